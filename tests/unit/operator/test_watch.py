"""The post-promotion watch (issue 13.3): its own e-process per window, margin = the
allowed drop, alpha spent as alpha / (k (k + 1)) over windows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from rolloutsim import T0, Traffic, make_spec

from tierguard.api.enums import Arm, Verdict
from tierguard.operator.gates import evaluate_gates
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateOutcome, watch_alpha
from tierguard.operator.gateupdates import fresh_gate_state, update_gates


def test_alpha_spending_sums_to_the_budget() -> None:
    assert watch_alpha(0.05, 1) == pytest.approx(0.025)
    assert sum(watch_alpha(0.05, k) for k in range(1, 100_000)) == pytest.approx(0.05, rel=1e-4)
    with pytest.raises(ValueError):
        watch_alpha(0.05, 0)


def _watch(
    rates: dict[str, dict[str, float]], hours: int, seed: int
) -> tuple[dict[str, Any], list[list[GateOutcome]]]:
    """Promoted at T0 (95 % canary, holdback control); one look every 10 minutes."""
    spec = make_spec()
    gates = gate_specs(spec)
    traffic = Traffic(rates, per_minute=400, seed=seed)
    state = fresh_gate_state("r")
    outcomes: list[list[GateOutcome]] = []
    for i in range(hours * 6):
        at = T0 + timedelta(minutes=10 * i)
        traffic.tick(95.0, Arm.HOLDBACK, minutes=10)
        obs = traffic.observe(spec, at)
        state = update_gates(state, gates, obs, Arm.HOLDBACK)
        outcomes.append(evaluate_gates(state, gates, obs, 0.95, 200))
        if any(o.verdict == Verdict.FAIL for o in outcomes[-1]):
            break
    return state, outcomes


def test_a_small_persistent_difference_within_the_slo_is_never_rolled_back() -> None:
    """2 points worse with 5 allowed, watched for three days. The old watch continued the
    rollout's e-process (margin 0) forever, so any persistent difference was eventually
    detected and rolled back; the watch's margin is the allowed drop itself."""
    rates = {
        "simple": {"control": 0.10, "canary": 0.12},
        "tricky": {"control": 0.10, "canary": 0.12},
    }
    state, outcomes = _watch(rates, 72, seed=4)
    assert all(o.verdict != Verdict.FAIL for out in outcomes for o in out)
    watch = state["gates"]["simple/ThumbsDown"]["watch"]
    assert watch["window"] == 3, "a fresh window every 24 h"
    last = outcomes[-1][0]
    assert "post-promotion watch, window 3" in last.message
    assert last.threshold == pytest.approx(1 / (watch_alpha(0.05, 3) / 2))
    # the window's counts restart: about one day of canary outcomes, not three
    assert last.canary_samples < 400 * 1440 * 1.1


def test_a_loss_beyond_the_slo_after_promotion_is_rolled_back() -> None:
    rates = {
        "simple": {"control": 0.10, "canary": 0.25},
        "tricky": {"control": 0.10, "canary": 0.10},
    }
    _, outcomes = _watch(rates, 24, seed=5)
    failed = [o for o in outcomes[-1] if o.verdict == Verdict.FAIL]
    assert [o.tier for o in failed] == ["simple"]
    assert "window 1" in failed[0].message
