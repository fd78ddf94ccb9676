"""The router runs on uvloop (what the benchmarks measured), says so when it cannot, and
refuses to start without it when asked to."""

from __future__ import annotations

import pytest

from tierguard.router.eventloop import (
    MISSING_UVLOOP,
    EventLoopUnavailableError,
    LoopChoice,
    choose_event_loop,
)


def no_uvloop(name: str) -> object:
    raise ImportError(f"No module named {name!r}")


def test_auto_uses_uvloop_when_installed() -> None:
    loop = choose_event_loop("auto")  # the dev environment installs uvloop (pyproject)
    assert loop.name == "uvloop" and loop.warning is None
    assert loop.factory is not None
    ev = loop.factory()
    try:
        assert type(ev).__module__.startswith("uvloop")
    finally:
        ev.close()


def test_auto_without_uvloop_warns_and_falls_back() -> None:
    loop = choose_event_loop(LoopChoice.AUTO, importer=no_uvloop)
    assert loop.name == "asyncio" and loop.factory is None
    assert loop.warning == MISSING_UVLOOP
    assert "40 %" in MISSING_UVLOOP and "--event-loop=asyncio" in MISSING_UVLOOP


def test_required_uvloop_missing_fails() -> None:
    with pytest.raises(EventLoopUnavailableError, match="uvloop is not installed"):
        choose_event_loop("uvloop", importer=no_uvloop)


def test_asyncio_on_purpose_is_quiet_and_imports_nothing() -> None:
    def must_not_import(name: str) -> object:
        raise AssertionError(f"imported {name}")

    loop = choose_event_loop("ASYNCIO", importer=must_not_import)
    assert loop.name == "asyncio" and loop.warning is None and loop.factory is None


def test_unknown_choice_is_refused_with_the_options() -> None:
    with pytest.raises(EventLoopUnavailableError, match="auto, uvloop, asyncio"):
        choose_event_loop("trio")
