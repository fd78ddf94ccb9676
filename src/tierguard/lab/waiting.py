"""Waiting for a condition with a deadline, for tests and the lab.

Real servers are eventually consistent: a namespace takes a moment to be finalized,
Prometheus needs a scrape or two. Sleeping a fixed time is both slow and flaky, so
callers poll a predicate until it holds or a generous deadline passes. The deadline
is a bound against hanging, not a timed assertion: nothing asserts *how fast*.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tierguard.lab.processes import LabError

__all__ = ["WaitTimeoutError", "wait_for"]

T = TypeVar("T")


class WaitTimeoutError(LabError, AssertionError):
    """The condition did not hold before the deadline.

    Also an ``AssertionError`` so that pytest reports a failed test, not an error.
    """


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    message: str = "condition",
    *,
    interval: float = 0.2,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Call ``predicate`` until it returns a truthy value, and return that value.

    Exceptions raised by the predicate mean "not yet"; the last one (and the last
    falsy value) is quoted in the :class:`WaitTimeoutError` raised after ``timeout``
    seconds, together with ``message`` -- write it as what you were waiting for,
    e.g. ``"namespace t-1 to disappear"``. ``sleep`` and ``clock`` exist so the
    function itself is tested without real time.
    """
    deadline = clock() + timeout
    last_value: object = None
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
            last_value = value
            last_error = None
        if clock() >= deadline:
            detail = f"last error: {last_error!r}" if last_error else f"last value: {last_value!r}"
            raise WaitTimeoutError(f"timed out after {timeout:g}s waiting for {message} ({detail})")
        sleep(interval)
