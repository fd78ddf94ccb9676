"""bench/router/selfreport.py reads the router's own overhead histogram from a real
exposition (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tierguard.router.metrics import RouterMetrics
from tierguard.router.overhead import Overhead as RequestOverhead

_PATH = Path(__file__).resolve().parents[2] / "bench" / "router" / "selfreport.py"
_SPEC = importlib.util.spec_from_file_location("bench_router_selfreport", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
selfreport = importlib.util.module_from_spec(_SPEC)
sys.modules["bench_router_selfreport"] = selfreport  # dataclasses resolve the module
_SPEC.loader.exec_module(selfreport)


def _request(metrics: RouterMetrics, policy: str, parse: float, write: float) -> None:
    o = RequestOverhead()
    o.parse, o.classify, o.route, o.write = parse, 0.001, 0.0005, write
    o.observe(metrics.overhead_phases(policy))


def test_mean_overhead_per_request_between_two_scrapes() -> None:
    metrics = RouterMetrics()
    _request(metrics, "a", 0.002, 0.004)
    before = selfreport.parse(metrics.exposition().decode())
    assert before.requests == 1
    assert selfreport.parse(metrics.exposition().decode()).since(before) is None
    _request(metrics, "a", 0.001, 0.002)
    _request(metrics, "b", 0.003, 0.006)  # summed over policies
    after = selfreport.parse(metrics.exposition().decode())
    mean = after.since(before)
    assert mean is not None
    assert after.requests == 3
    assert mean["parse"] == pytest.approx(2.0)
    assert mean["classify"] == pytest.approx(1.0)
    assert mean["write"] == pytest.approx(4.0)
    assert mean["total"] == pytest.approx(2.0 + 1.0 + 0.5 + 4.0)


def test_an_exposition_without_the_histogram_reads_as_zero() -> None:
    o = selfreport.parse("# HELP x\nx_total 3\n")
    assert o.requests == 0 and o.seconds == {}
