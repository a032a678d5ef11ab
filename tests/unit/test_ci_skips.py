"""CI fails on an unexpected skip (tests/ci_skips.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_a_skipping_test(tmp_path: Path, ci: bool) -> subprocess.CompletedProcess:
    test = tmp_path / "test_skips.py"
    test.write_text("import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no tool')\n")
    environment = {k: v for k, v in os.environ.items() if k != "OSHA_CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_skips",
                           "--rootdir", str(tmp_path), str(test)],
                          capture_output=True, text=True, cwd=REPO,
                          env={**environment, "PYTHONPATH": str(REPO),
                               **({"OSHA_CI": "1"} if ci else {})})


def test_a_skip_fails_the_run_on_ci_only(tmp_path):
    on_ci = run_a_skipping_test(tmp_path, ci=True)
    assert on_ci.returncode == 1, on_ci.stdout + on_ci.stderr
    assert "1 test(s) skipped, which fails CI: " in on_ci.stdout
    assert "test_needs_a_tool" in on_ci.stdout
    elsewhere = run_a_skipping_test(tmp_path, ci=False)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
