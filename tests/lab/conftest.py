"""The running lab, shared by every lab test of one pytest session and torn down at its end.

The substrate comes from OSHA_LAB_SUBSTRATE (`containers`, the default, or `vms`), the failover
profile from OSHA_LAB_PROFILE (`default` or `fast`, lab/session.py).
"""
from __future__ import annotations

import signal
import sys

import pytest

from lab import evidence, session
from tools import replay


def _exit_on_signal(signum, _frame) -> None:
    # SIGTERM (CI timeout, kill) or Ctrl-C: end the lab first, so no step still running on a node
    # keeps the run waiting, then end the session (the fixture's teardown runs too). Not
    # sys.exit: pytest reports a SystemExit as the test's failure and goes on to the next test.
    replay.STOP.set()
    session.ensure_down()
    pytest.exit(f"lab interrupted by signal {signum}", returncode=1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failed lab test leaves the cluster's view and every node's logs in the artifacts."""
    outcome = yield
    report = outcome.get_result()
    running = item.funcargs.get("lab") if hasattr(item, "funcargs") else None
    # After a signal the lab is already down: there is nothing left to take evidence from.
    if report.failed and isinstance(running, session.Lab) and not replay.STOP.is_set():
        saved = evidence.save(running, f"{item.name}.{report.when}")
        report.sections.append(("lab evidence", f"cluster state and node logs: {saved}"))
        print(f"\n{item.name}: cluster state and node logs saved in {saved}", file=sys.stderr,
              flush=True)


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The lab stack rendered, its rootfs or image built (or reused), hypervisor and nodes up."""
    rendered = session.render_stack(tmp_path_factory.mktemp("lab") / "rendered",
                                    profile=session.profile_from_environment())
    running = session.Lab(rendered, session.substrate_from_environment())
    previous = {s: signal.signal(s, _exit_on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        running.up()
        yield running
    finally:
        session.ensure_down()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
