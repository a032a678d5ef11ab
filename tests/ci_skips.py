"""On CI (OSHA_CI=1, which .ci/run sets) a skipped test fails the run: everything a test needs is
installed there, so a skip means a check silently did not run."""
from __future__ import annotations

import os

import pytest


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = reporter.stats.get("skipped", []) if reporter else []
    if os.environ.get("OSHA_CI") == "1" and skipped and exitstatus == pytest.ExitCode.OK:
        reporter.write_line(f"OSHA_CI=1: {len(skipped)} test(s) skipped, which fails CI: "
                            + ", ".join(r.nodeid for r in skipped), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
