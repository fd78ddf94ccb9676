"""What the router itself costs a request: its own time per phase, upstream time excluded
(``tierguard_router_overhead_seconds{phase}``, docs/metrics.md), and the optional
``x-tierguard-overhead-ms`` answer header.

The phases are measured with ``time.perf_counter`` only, into one :class:`Overhead` per
request (four floats); the view sums them, nothing here does I/O:

* ``parse``: authorise, read and parse the request body;
* ``classify``: the classifier model itself (:class:`ClassifierTimer` wraps the planner's
  ``classify`` callable, so per-message cache hits cost nothing here);
* ``route``: the rest of planning (session key, split, chain) and building each upstream
  body (:func:`timed_builder`);
* ``write``: signing, rewriting and serialising the answer and accounting for it.
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any, Generic, TypeVar

OVERHEAD_HEADER = "x-tierguard-overhead-ms"

T = TypeVar("T")


class Overhead:
    """One request's router time per phase, in seconds."""

    __slots__ = ("classify", "parse", "route", "write")

    def __init__(self) -> None:
        self.parse = 0.0
        self.classify = 0.0
        self.route = 0.0
        self.write = 0.0

    @property
    def total(self) -> float:
        return self.parse + self.classify + self.route + self.write

    def phases(self) -> tuple[float, float, float, float]:
        """In ``tierguard.api.metrics.PHASES`` order."""
        return (self.parse, self.classify, self.route, self.write)

    def header_value(self) -> str:
        """Milliseconds, three decimals (microseconds)."""
        return f"{self.total * 1000.0:.3f}"

    def observe(self, children: tuple[Any, ...]) -> None:
        """Observe each phase on the histogram children of
        :meth:`~tierguard.router.metrics.RouterMetrics.overhead_phases`."""
        for child, seconds in zip(children, self.phases(), strict=True):
            child.observe(seconds)


class ClassifierTimer(Generic[T]):
    """Wraps a classify callable and adds up the time spent in it."""

    __slots__ = ("calls", "classify", "seconds")

    def __init__(self, classify: Callable[[list[str]], T]) -> None:
        self.classify = classify
        self.seconds = 0.0
        self.calls = 0

    def __call__(self, texts: list[str]) -> T:
        t0 = perf_counter()
        try:
            return self.classify(texts)
        finally:
            self.seconds += perf_counter() - t0
            self.calls += 1


def timed_builder(build: Callable[[str], T], overhead: Overhead | None) -> Callable[[str], T]:
    """``build`` with its time added to ``overhead.route`` (``build`` itself when there is
    no overhead to record)."""
    if overhead is None:
        return build

    def timed(name: str) -> T:
        t0 = perf_counter()
        try:
            return build(name)
        finally:
            overhead.route += perf_counter() - t0

    return timed
