"""wait_for: returns the first truthy value, quotes the last failure on timeout."""

from __future__ import annotations

import pytest

from tierguard.lab.waiting import WaitTimeoutError, wait_for


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_the_first_truthy_value() -> None:
    clock = FakeClock()
    values = iter([None, 0, "", "ready"])
    result = wait_for(lambda: next(values), timeout=10, sleep=clock.sleep, clock=clock)
    assert result == "ready"
    assert clock.sleeps == [0.2, 0.2, 0.2]


def test_exceptions_mean_not_yet() -> None:
    clock = FakeClock()
    calls = {"n": 0}

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionError("refused")
        return 7

    assert wait_for(flaky, timeout=10, sleep=clock.sleep, clock=clock) == 7


def test_timeout_names_the_condition_and_the_last_error() -> None:
    clock = FakeClock()

    def broken() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(WaitTimeoutError) as info:
        wait_for(broken, timeout=1, message="the API server", sleep=clock.sleep, clock=clock)
    text = str(info.value)
    assert "waiting for the API server" in text
    assert "ConnectionError('refused')" in text
    assert clock.now == pytest.approx(1.0)


def test_timeout_quotes_the_last_falsy_value_and_is_an_assertion_error() -> None:
    clock = FakeClock()
    with pytest.raises(AssertionError, match=r"last value: \[\]"):
        wait_for(lambda: [], timeout=0.5, sleep=clock.sleep, clock=clock)
