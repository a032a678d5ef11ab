"""CI fails on an unexpected skip (tests/ci_skips.py)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_a_skipping_test(tmp_path: Path, ci: bool, *options: str) -> subprocess.CompletedProcess:
    test = tmp_path / "test_skips.py"
    test.write_text("import pytest\n\ndef test_needs_a_tool():\n    pytest.skip('no tool')\n")
    environment = {k: v for k, v in os.environ.items() if k != "OSHA_CI"}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.ci_skips",
                           "--rootdir", str(tmp_path), *options, str(test)],
                          capture_output=True, text=True, cwd=REPO,
                          env={**environment, "PYTHONPATH": str(REPO),
                               **({"OSHA_CI": "1"} if ci else {})})


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["one process", "xdist workers"])
def test_a_skip_fails_the_run_on_ci_only(tmp_path, options):
    """Also when the skip happens in a pytest-xdist worker, as under `make test`."""
    on_ci = run_a_skipping_test(tmp_path, True, *options)
    assert on_ci.returncode == 1, on_ci.stdout + on_ci.stderr
    assert "1 test(s) skipped, which fails CI: " in on_ci.stdout
    assert "test_needs_a_tool" in on_ci.stdout
    elsewhere = run_a_skipping_test(tmp_path, False, *options)
    assert elsewhere.returncode == 0, elsewhere.stdout + elsewhere.stderr
