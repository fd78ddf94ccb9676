"""The pure parts of the router's self-reported overhead (tierguard.router.overhead)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tierguard.api import metrics as m
from tierguard.router.metrics import RouterMetrics
from tierguard.router.overhead import ClassifierTimer, Overhead, timed_builder


def test_overhead_total_header_and_phase_order() -> None:
    o = Overhead()
    o.parse, o.classify, o.route, o.write = 0.001, 0.002, 0.0005, 0.00025
    assert o.total == pytest.approx(0.00375)
    assert o.header_value() == "3.750"
    assert o.phases() == (0.001, 0.002, 0.0005, 0.00025)
    assert m.PHASES == ("parse", "classify", "route", "write")


def test_observe_puts_each_phase_on_its_label() -> None:
    metrics = RouterMetrics()
    o = Overhead()
    o.parse, o.classify, o.route, o.write = 0.00001, 0.003, 0.0002, 0.07
    children = metrics.overhead_phases("p")
    assert metrics.overhead_phases("p") is children  # cached per policy
    o.observe(children)
    o.observe(children)
    text = metrics.exposition().decode()
    name = m.ROUTER_OVERHEAD.name
    assert f'{name}_count{{phase="classify",policy="p"}} 2.0' in text
    assert f'{name}_sum{{phase="write",policy="p"}} 0.14' in text
    # the 20 µs bucket holds the parse phase only
    assert f'{name}_bucket{{le="2e-05",phase="parse",policy="p"}} 2.0' in text
    assert f'{name}_bucket{{le="2e-05",phase="route",policy="p"}} 0.0' in text


def test_classifier_timer_adds_up_calls_and_passes_results_through() -> None:
    def slow(texts: list[str]) -> list[str]:
        time.sleep(0.01)
        return [t.upper() for t in texts]

    timer = ClassifierTimer(slow)
    assert timer(["a"]) == ["A"]
    assert timer(["b", "c"]) == ["B", "C"]
    assert timer.calls == 2
    assert timer.seconds >= 0.02


def test_classifier_timer_counts_a_failing_call() -> None:
    def broken(texts: list[str]) -> Any:
        raise RuntimeError("model failed")

    timer = ClassifierTimer(broken)
    with pytest.raises(RuntimeError):
        timer(["x"])
    assert timer.calls == 1
    assert timer.seconds > 0


def test_timed_builder_adds_to_route_and_is_a_no_op_without_overhead() -> None:
    def build(name: str) -> str:
        time.sleep(0.005)
        return name + "!"

    assert timed_builder(build, None) is build
    o = Overhead()
    timed = timed_builder(build, o)
    assert timed("big") == "big!"
    assert timed("small") == "small!"
    assert o.route >= 0.01
    assert (o.parse, o.classify, o.write) == (0.0, 0.0, 0.0)
