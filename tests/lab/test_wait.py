"""lab/wait.py: the lab's one host-side wait (on a fake clock), and a process deaf to SIGTERM."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from lab import hypervisor, wait


class Clock:
    """time.monotonic and time.sleep, where sleeping only moves the clock."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(wait, "time", fake)
    return fake


def answers(*values):
    """A condition answering `values` in turn (an exception in them is raised)."""
    queue = list(values)

    def ready():
        value = queue.pop(0)
        if isinstance(value, Exception):
            raise value
        return value
    return ready


def test_the_first_true_answer_is_returned_after_one_interval_per_no(clock):
    assert wait.until("the pid file", answers(None, 0, "", 42), seconds=30, interval=0.2) == 42
    assert clock.sleeps == [0.2] * 3


def test_a_ready_condition_is_not_slept_on(clock):
    assert wait.until("it", lambda: True, seconds=0, interval=1) is True
    assert clock.sleeps == []


def test_the_timeout_names_what_was_awaited_its_last_reason_and_the_report(clock):
    calls = []

    def never():
        calls.append(clock.now)
        raise wait.NotYet(f"still not, at {clock.now - 1000:g}")
    with pytest.raises(wait.TimedOut) as raised:
        wait.until("the cluster to settle", never, seconds=3, interval=1,
                   report=lambda: "the cluster's view")
    assert str(raised.value) == "waited 3 s for the cluster to settle: still not, at 3\n" \
        "the cluster's view"
    assert isinstance(raised.value, RuntimeError)
    # Asked at the start, after each interval, and once at the deadline.
    assert [t - 1000 for t in calls] == [0, 1, 2, 3]


def test_a_timeout_without_a_reason_or_report_names_only_what_was_awaited(clock):
    with pytest.raises(wait.TimedOut, match=r"^waited 0\.5 s for libvirtd to answer$"):
        wait.until("libvirtd to answer", lambda: False, seconds=0.5, interval=0.5)


def test_the_given_exceptions_count_as_not_ready_and_the_last_one_is_the_reason(clock):
    ready = answers(RuntimeError("ssh: no route"), subprocess.TimeoutExpired("crm", 90), True)
    assert wait.until("it", ready, seconds=10, interval=1,
                      not_yet=(RuntimeError, subprocess.TimeoutExpired)) is True
    with pytest.raises(wait.TimedOut, match=r"for it: ssh: no route$"):
        wait.until("it", answers(False, RuntimeError("ssh: no route")), seconds=1, interval=1,
                   not_yet=(RuntimeError,))


def test_any_other_exception_ends_the_wait_as_it_is(clock):
    with pytest.raises(ValueError, match="not a pid"):
        wait.until("it", answers(None, ValueError("not a pid")), seconds=10, interval=1,
                   not_yet=(RuntimeError,))
    assert clock.sleeps == [1]


def test_a_lab_process_deaf_to_sigterm_is_killed_when_its_wait_times_out():
    deaf = subprocess.Popen([sys.executable, "-c", "import signal, time; "
                             "signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); "
                             "time.sleep(30)"], stdout=subprocess.PIPE)
    deaf.stdout.readline()  # its handler is set
    os.kill(deaf.pid, signal.SIGTERM)
    hypervisor._wait_gone(deaf.pid, seconds=0.3)
    assert deaf.wait(timeout=5) == -signal.SIGKILL
