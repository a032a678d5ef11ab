"""The lab's one way to wait on the host side: a condition asked at an interval until a deadline.

`until` gives the condition's first true answer, or raises `TimedOut` naming what it waited for,
the last reason it was not ready and, when asked for, a report of the state it gave up in. The
condition is asked once more after each interval, even when that comes after the deadline, and
it can say why it is not ready by raising `NotYet`.
"""
from __future__ import annotations

import time
from typing import Callable, Optional, TypeVar

T = TypeVar("T")


class NotYet(Exception):
    """Raised by a condition that is not ready, with the reason why."""


class TimedOut(RuntimeError):
    """A condition was not ready by its deadline."""


def until(what: str, ready: Callable[[], T], seconds: float, interval: float,
          not_yet: tuple[type[Exception], ...] = (),
          report: Optional[Callable[[], str]] = None) -> T:
    """`ready()`'s first true answer, asked every `interval` s for `seconds`. `NotYet` and the
    `not_yet` exceptions count as "not ready" (their text is the reason the error gives); any
    other exception ends the wait. `report()` is appended to the error when it is raised."""
    deadline = time.monotonic() + seconds
    reason = ""
    while True:
        try:
            answer = ready()
        except (NotYet, *not_yet) as error:
            answer, reason = None, str(error)
        if answer:
            return answer
        if time.monotonic() >= deadline:
            raise TimedOut(f"waited {seconds:g} s for {what}" + (f": {reason}" if reason else "")
                           + (f"\n{report()}" if report else ""))
        time.sleep(interval)
