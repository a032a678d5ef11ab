"""The running lab, shared by every lab test of one pytest session and torn down at its end."""
from __future__ import annotations

import signal
import sys

import pytest

from lab import session


def _exit_on_sigterm(*_args) -> None:
    # SIGTERM (CI timeout, kill): end the lab first, so no step still running on a node keeps
    # the run waiting, then raise so the fixture's teardown runs too.
    session.ensure_down()
    sys.exit("lab interrupted by SIGTERM")


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """The lab stack rendered, its image built (or reused), the hypervisor and nodes started."""
    rendered = session.render_stack(tmp_path_factory.mktemp("lab") / "rendered")
    running = session.Lab(rendered, session.build_image())
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        running.up()
        yield running
    finally:
        session.ensure_down()
        signal.signal(signal.SIGTERM, previous)
