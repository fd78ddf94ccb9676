"""Which event loop the router runs on.

The benchmarks (docs/benchmarks.md) measure the router on uvloop, ~40 % more requests per
CPU-second than asyncio's own loop. A router that silently falls back to asyncio does not
run what was measured, so the fallback is said out loud, and can be refused:

* ``auto`` (default): uvloop when installed, otherwise asyncio with a warning;
* ``uvloop``: uvloop or fail at start-up (for images that must match the benchmarks);
* ``asyncio``: asyncio's loop, deliberately, without a warning.

Chosen with ``--event-loop`` or ``TIERGUARD_EVENT_LOOP``.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

ENV_EVENT_LOOP = "TIERGUARD_EVENT_LOOP"


class LoopChoice(StrEnum):
    AUTO = "auto"
    UVLOOP = "uvloop"
    ASYNCIO = "asyncio"


class EventLoopUnavailableError(RuntimeError):
    """The required event loop cannot be had."""


@dataclass(frozen=True)
class EventLoop:
    """The loop to run on: ``factory`` None means asyncio's default."""

    name: str
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    warning: str | None = None


MISSING_UVLOOP = (
    "uvloop is not installed: the router runs on asyncio's event loop, which serves "
    "about 40 % fewer requests per CPU-second than the benchmarked uvloop "
    "(docs/benchmarks.md). Install tierguard[router] (the router image has it), or choose "
    "asyncio explicitly with --event-loop=asyncio to silence this"
)


def choose_event_loop(
    choice: LoopChoice | str,
    importer: Callable[[str], object] = importlib.import_module,
) -> EventLoop:
    """Resolve ``choice`` to a loop; raise :class:`EventLoopUnavailableError` when uvloop
    is required and missing. ``importer`` is injectable for tests."""
    try:
        want = LoopChoice(str(choice).lower() or LoopChoice.AUTO)
    except ValueError:
        allowed = ", ".join(c.value for c in LoopChoice)
        raise EventLoopUnavailableError(
            f"unknown event loop {choice!r}: use one of {allowed}"
        ) from None
    if want is LoopChoice.ASYNCIO:
        return EventLoop("asyncio", None)
    try:
        uvloop = importer("uvloop")
    except ImportError:
        if want is LoopChoice.UVLOOP:
            raise EventLoopUnavailableError(
                "--event-loop=uvloop, but uvloop is not installed (pip install uvloop, or "
                "install tierguard[router])"
            ) from None
        return EventLoop("asyncio", None, MISSING_UVLOOP)
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop  # type: ignore[attr-defined]
    return EventLoop("uvloop", factory)
