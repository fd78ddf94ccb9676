"""Tests of the gate statistics: exactness, peeking safety, power and resumability.

The Monte Carlo tests use fixed seeds and assert with a tolerance of a few standard
errors, so they are deterministic and still fail when the property breaks.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st_

from tierguard.api.enums import Verdict
from tierguard.operator import statistics as st

# ----------------------------------------------------------------------------- counters


def test_counter_delta_plain_increase() -> None:
    assert st.counter_delta(10.0, 25.0) == 15.0
    assert st.counter_delta(None, 7.0) == 7.0


def test_counter_delta_reset_counts_new_value() -> None:
    # The router restarted: the counter went from 1000 down to 12; 12 outcomes happened
    # since the restart.
    assert st.counter_delta(1000.0, 12.0) == 12.0


def test_counter_delta_rejects_negative() -> None:
    with pytest.raises(st.GateInputError, match="negative"):
        st.counter_delta(1.0, -1.0)


@given(st_.lists(st_.tuples(st_.integers(0, 50), st_.booleans()), min_size=1, max_size=40))
def test_counter_deltas_sum_to_true_increments(steps: list[tuple[int, bool]]) -> None:
    """Summed deltas equal the true number of events whenever a reset is detectable
    (the restarted counter is below its previous reading)."""
    value = 0.0
    prev: float | None = 0.0
    seen = 0.0
    for inc, reset in steps:
        if reset and inc < value:
            value = float(inc)  # restarted right after the previous look
        else:
            value += inc
        seen += st.counter_delta(prev, value)
        prev = value
    assert seen == sum(inc for inc, _ in steps)


def test_series_delta_handles_one_replica_restarting() -> None:
    prev = {"pod-a": 500.0, "pod-b": 400.0}
    cur = {"pod-a": 520.0, "pod-b": 3.0, "pod-c": 4.0}  # b restarted, c is new
    # Summing first would give 527 - 900 < 0 and be read as a reset of everything.
    assert st.series_delta(prev, cur) == 20.0 + 3.0 + 4.0


def test_block_from_readings_clips_bad_into_total() -> None:
    prev = {"control": st.ArmReading.of(10, 100), "canary": st.ArmReading.of(1, 10)}
    cur = {"control": st.ArmReading.of(15, 103), "canary": st.ArmReading.of(2, 20)}
    block = st.block_from_readings(prev, cur)
    assert block == st.Block(control_bad=3.0, control_total=3.0, canary_bad=1.0, canary_total=10.0)


# ----------------------------------------------------------------------------- exactness


def _exact_expectation(n_c: int, n_t: int, q_c: float, q_t: float, m: float, p: float) -> float:
    """E[block e-value] under (p, p + m) by summing over all outcomes (no Monte Carlo)."""
    from math import comb

    f_c, f_t = np.meshgrid(np.arange(n_c + 1), np.arange(n_t + 1), indexing="ij")
    pmf_c = np.array([comb(n_c, k) * p**k * (1 - p) ** (n_c - k) for k in range(n_c + 1)])
    p_t = p + m
    pmf_t = np.array([comb(n_t, k) * p_t**k * (1 - p_t) ** (n_t - k) for k in range(n_t + 1)])
    log_e = st.shifted_block_log_e(f_c, float(n_c), f_t, float(n_t), q_c, q_t, m)
    return float(np.sum(np.outer(pmf_c, pmf_t) * np.exp(log_e)))


@settings(max_examples=60, deadline=None)
@given(
    n_c=st_.integers(0, 8),
    n_t=st_.integers(0, 8),
    q_c=st_.floats(0.02, 0.6),
    d=st_.floats(-0.15, 0.3),
    m=st_.floats(-0.1, 0.2),
    p=st_.floats(0.0, 1.0),
)
def test_block_e_value_has_expectation_at_most_one_under_the_null(
    n_c: int, n_t: int, q_c: float, d: float, m: float, p: float
) -> None:
    """The core validity claim, checked exactly: for any null point on the line
    canary = control + m, and beyond it away from the alternative, E[e] <= 1."""
    q_t = min(max(q_c + d, 0.005), 0.995)
    if abs(q_t - q_c - m) < 1e-3:
        return  # alternative on the null: e == 1 by construction
    lo, hi = max(0.0, -m), min(1.0, 1.0 - m)
    p_c = lo + p * (hi - lo)
    assert _exact_expectation(n_c, n_t, q_c, q_t, m, p_c) <= 1.0 + 1e-9
    # One-sided extension: move the canary further from the alternative.
    away = -0.05 if q_t > q_c + m else 0.05
    if 0.0 <= p_c + m + away <= 1.0:
        assert _exact_expectation(n_c, n_t, q_c, q_t, m + away, p_c) <= 1.0 + 1e-9


def test_null_point_for_zero_margin_is_pooled_rate() -> None:
    log_e = st.shifted_block_log_e(3, 10, 5, 10, 0.2, 0.3, 0.0)
    p0 = 0.25
    expected = (
        5 * math.log(0.3 / p0)
        + 5 * math.log(0.7 / (1 - p0))
        + 3 * math.log(0.2 / p0)
        + 7 * math.log(0.8 / (1 - p0))
    )
    assert float(log_e) == pytest.approx(expected, rel=1e-12)


def test_empty_block_contributes_nothing() -> None:
    assert float(st.shifted_block_log_e(0, 0, 0, 0, 0.1, 0.2, 0.05)) == 0.0


# ----------------------------------------------------------------------------- alpha


def test_alpha_is_shared_over_gates() -> None:
    assert st.alpha_per_test(0.05, 12) == pytest.approx(0.05 / 12)
    with pytest.raises(st.GateInputError):
        st.alpha_per_test(0.05, 0)
    with pytest.raises(st.GateInputError):
        st.alpha_per_test(1.5, 3)


# ----------------------------------------------------------------------------- verdicts


def test_combine_verdicts_keeps_outcomes_apart() -> None:
    p, f, i, n = Verdict.PASS, Verdict.FAIL, Verdict.INCONCLUSIVE, Verdict.NO_DATA
    assert st.combine_verdicts([p, p]) is p
    assert st.combine_verdicts([p, f, n]) is f
    assert st.combine_verdicts([p, n, i]) is n
    assert st.combine_verdicts([p, i]) is i
    assert st.combine_verdicts([]) is n


def _feed(state: st.GateState, blocks: list[st.Block]) -> st.GateState:
    for block in blocks:
        state = st.add_block(state, block)
    return state


def test_no_samples_is_no_data_not_pass() -> None:
    result = st.evaluate(st.new_gate_state(0.05), 0.05, 0.01, 100)
    assert result.verdict is Verdict.NO_DATA
    assert result.control_rate is None


def test_provider_error_is_no_data_even_with_samples() -> None:
    state = _feed(st.new_gate_state(0.05), [st.Block(10, 100, 10, 100)])
    result = st.evaluate(state, 0.05, 0.01, 10, provider_error="connection refused")
    assert result.verdict is Verdict.NO_DATA
    assert "connection refused" in result.reason


def test_too_few_samples_is_inconclusive_even_if_bound_is_good() -> None:
    state = _feed(st.new_gate_state(0.5), [st.Block(10, 100, 10, 100)] * 3)
    assert st.evaluate(state, 0.5, 0.01, 1000).verdict is Verdict.INCONCLUSIVE
    assert st.evaluate(state, 0.5, 0.01, 100).verdict is Verdict.PASS


def test_identical_arms_with_many_samples_pass() -> None:
    state = _feed(st.new_gate_state(0.05), [st.Block(20, 200, 20, 200)] * 20)
    result = st.evaluate(state, 0.05, 0.05 / 12, 500)
    assert result.verdict is Verdict.PASS
    assert result.upper_bound <= 0.05
    assert result.control_rate == result.canary_rate == pytest.approx(0.1)


def test_clear_degradation_fails_and_failure_is_final() -> None:
    state = _feed(st.new_gate_state(0.05), [st.Block(10, 100, 30, 100)] * 5)
    result = st.evaluate(state, 0.05, 0.01, 10)
    assert result.verdict is Verdict.FAIL
    assert result.e_value >= result.threshold
    # Later good news and a broken Prometheus do not undo a crossing.
    state = _feed(state, [st.Block(10, 100, 5, 100)] * 5)
    assert st.evaluate(state, 0.05, 0.01, 10, provider_error="timeout").verdict is Verdict.FAIL


def test_absolute_objective() -> None:
    good = st.add_block(st.new_gate_state(0.05, kind="absolute"), st.Block(0, 0, 10, 2000))
    assert st.evaluate(good, 0.05, 0.01, 100).verdict is Verdict.PASS
    bad = st.add_block(st.new_gate_state(0.05, kind="absolute"), st.Block(0, 0, 30, 200))
    result = st.evaluate(bad, 0.05, 0.01, 100)
    assert result.verdict is Verdict.FAIL
    assert result.e_value >= result.threshold
    few = st.add_block(st.new_gate_state(0.05, kind="absolute"), st.Block(0, 0, 0, 20))
    assert st.evaluate(few, 0.05, 0.01, 100).verdict is Verdict.INCONCLUSIVE
    assert (
        st.evaluate(st.new_gate_state(0.05, kind="absolute"), 0.05, 0.01, 1).verdict
        is Verdict.NO_DATA
    )


def test_absolute_bounds_cover_the_rate_anytime() -> None:
    """Per-look coverage of the one-sample confidence sequence at p = 0.05."""
    rng = np.random.default_rng(7)
    alpha, misses = 0.05, 0
    runs = 200
    for _ in range(runs):
        draws = np.cumsum(rng.random(400) < 0.05)
        for n in range(20, 401, 20):
            lower, upper = st.absolute_bounds(float(draws[n - 1]), float(n), alpha)
            if not lower <= 0.05 <= upper:
                misses += 1
                break
    assert misses / runs <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)


# ----------------------------------------------------------------------------- resumability


@settings(max_examples=25, deadline=None)
@given(
    steps=st_.lists(
        st_.tuples(
            st_.integers(0, 30),
            st_.integers(0, 30),
            st_.integers(0, 30),
            st_.integers(0, 30),
            st_.booleans(),
        ),
        min_size=2,
        max_size=25,
    ),
    cut=st_.integers(0, 24),
)
def test_resume_from_json_snapshot_decides_exactly_like_never_stopping(
    steps: list[tuple[int, int, int, int, bool]], cut: int
) -> None:
    """An operator restart (state through JSON and back) changes no decision, including
    across counter resets of the routers."""
    counters = {"control": [0.0, 0.0], "canary": [0.0, 0.0]}
    readings = []
    for cb, cn, tb, tn, reset in steps:
        if reset:
            counters = {"control": [0.0, 0.0], "canary": [0.0, 0.0]}
        counters["control"][0] += min(cb, cn)
        counters["control"][1] += cn
        counters["canary"][0] += min(tb, tn)
        counters["canary"][1] += tn
        readings.append({arm: st.ArmReading.of(*v) for arm, v in counters.items()})
    straight = st.new_gate_state(0.05)
    resumed = st.new_gate_state(0.05)
    cut = min(cut, len(readings) - 1)
    for i, reading in enumerate(readings):
        straight = st.update(straight, reading)
        resumed = st.update(resumed, reading)
        if i == cut:
            resumed = st.GateState.from_json(json.loads(json.dumps(resumed.to_json())))
        for alpha in (0.05, 0.001):
            assert st.evaluate(straight, 0.05, alpha, 20) == st.evaluate(resumed, 0.05, alpha, 20)
    assert straight.to_json() == resumed.to_json()


def test_first_reading_and_rebase_only_set_the_baseline() -> None:
    big = {"control": st.ArmReading.of(500, 5000), "canary": st.ArmReading.of(50, 500)}
    state = st.update(st.new_gate_state(0.05), big)
    assert state.control_total == state.canary_total == 0.0
    later = {"control": st.ArmReading.of(510, 5100), "canary": st.ArmReading.of(52, 520)}
    state = st.update(state, later)
    assert (state.control_bad, state.control_total) == (10.0, 100.0)
    assert (state.canary_bad, state.canary_total) == (2.0, 20.0)
    holdback = {
        "control": st.ArmReading(bad={"holdback": 90.0}, total={"holdback": 900.0}),
        "canary": st.ArmReading.of(60, 600),
    }
    rebased = st.rebase(state, holdback)
    assert rebased.control_total == state.control_total
    assert st.update(rebased, holdback).control_total == state.control_total


def test_state_json_is_compact() -> None:
    state = _feed(st.new_gate_state(0.05), [st.Block(20, 200, 20, 200)] * 3)
    state = st.update(state, {"control": st.ArmReading.of(1, 2), "canary": st.ArmReading.of(1, 2)})
    assert len(json.dumps(state.to_json())) < 1200


def test_scalar_path_matches_vectorised_kernels() -> None:
    """The bench drives the vectorised kernels; the operator the GateState path. Both must
    compute the same e-values."""
    rng = np.random.default_rng(3)
    state = st.new_gate_state(0.05)
    cb = cn = tb = tn = 0.0
    log_fail = np.zeros(len(state.grid))
    for _ in range(30):
        n_c, n_t = float(rng.integers(0, 40)), float(rng.integers(0, 40))
        b_c, b_t = float(rng.binomial(int(n_c), 0.1)), float(rng.binomial(int(n_t), 0.2))
        if n_c + n_t > 0:
            log_fail += st.fail_block_log_e(
                b_c, n_c, b_t, n_t, cb, cn, state.grid, state.fail_margin
            )
        state = st.add_block(state, st.Block(b_c, n_c, b_t, n_t))
        cb, cn, tb, tn = cb + b_c, cn + n_c, tb + b_t, tn + n_t
    assert state.log_e_fail == pytest.approx(list(log_fail), rel=1e-12)


# ----------------------------------------------------------------------------- Monte Carlo


def _simulate(
    p_control: float,
    p_canary: float,
    n_control: int,
    n_canary: int,
    minutes: int,
    alpha: float,
    runs: int,
    seed: int,
    allowed_drop: float = 0.05,
    fail_margin: float = 0.0,
) -> tuple[float, float]:
    """Fraction of runs that ever FAIL and that ever PASS (bound within the allowed drop),
    looking every minute, through the same kernels as the operator."""
    rng = np.random.default_rng(seed)
    grid = st.fail_grid(allowed_drop)
    margins = (allowed_drop,)
    log_fail = np.zeros((runs, len(grid)))
    log_pass = np.zeros((runs, 1))
    max_fail = np.full(runs, -np.inf)
    max_pass = np.zeros((runs, 1))
    past = np.zeros((4, runs))
    level = math.log(1 / alpha)
    for _ in range(minutes):
        n_c = np.full(runs, float(n_control))
        n_t = np.full(runs, float(n_canary))
        b_c = rng.binomial(n_control, p_control, runs).astype(float)
        b_t = rng.binomial(n_canary, p_canary, runs).astype(float)
        log_fail += st.fail_block_log_e(b_c, n_c, b_t, n_t, past[0], past[1], grid, fail_margin)
        max_fail = np.maximum(max_fail, st.log_mean_exp(log_fail))
        log_pass += st.pass_block_log_e(
            b_c, n_c, b_t, n_t, past[0], past[1], past[2], past[3], margins
        )
        max_pass = np.maximum(max_pass, log_pass)
        past += np.stack([b_c, n_c, b_t, n_t])
    failed = max_fail >= level
    passed = max_pass[:, 0] >= level
    return float(failed.mean()), float(passed.mean())


def _naive_z_false_rollbacks(
    n_per_arm: int, minutes: int, alpha: float, runs: int, seed: int
) -> float:
    """A one-sided two-proportion z-test at level alpha re-checked every minute."""
    rng = np.random.default_rng(seed)
    bc = np.cumsum(rng.binomial(n_per_arm, 0.1, (minutes, runs)), axis=0)
    bt = np.cumsum(rng.binomial(n_per_arm, 0.1, (minutes, runs)), axis=0)
    n = n_per_arm * np.arange(1, minutes + 1)[:, None]
    pooled = (bc + bt) / (2 * n)
    se = np.sqrt(np.maximum(pooled * (1 - pooled), 1e-12) * 2 / n)
    z = (bt - bc) / n / se
    return float((z > 1.6448536).any(axis=0).mean())


def _tolerance(rate: float, runs: int) -> float:
    return 3 * math.sqrt(rate * (1 - rate) / runs)


@pytest.mark.parametrize(("n_control", "n_canary"), [(20, 20), (38, 2)], ids=["1:1", "19:1"])
def test_identical_arms_rarely_roll_back_under_per_minute_looks(
    n_control: int, n_canary: int
) -> None:
    alpha, runs = 0.05, 3000
    failed, _ = _simulate(0.1, 0.1, n_control, n_canary, 300, alpha, runs, seed=11)
    assert failed <= alpha + _tolerance(alpha, runs)


def test_naive_z_test_rechecked_every_minute_inflates_false_rollbacks() -> None:
    """Why we do not use it: at nominal 5 % it rolls back far more identical canaries."""
    alpha, runs = 0.05, 3000
    naive = _naive_z_false_rollbacks(20, 300, alpha, runs, seed=11)
    ours, _ = _simulate(0.1, 0.1, 20, 20, 300, alpha, runs, seed=11)
    assert naive > 0.2
    assert naive > 4 * ours


def test_five_point_drop_in_one_tier_is_caught() -> None:
    """90 % -> 85 % quality in one tier, alpha shared over 4 tiers x 3 signals, 10 % stage
    share (9:1) at 40 judged requests per minute in that tier, 8 hours (1,920 canary
    samples: about twice the median needed, see docs/statistics.md)."""
    alpha, runs = st.alpha_per_test(0.05, 12), 600
    failed, passed = _simulate(0.10, 0.15, 36, 4, 480, alpha, runs, seed=5)
    assert failed >= 0.95
    assert passed <= alpha + _tolerance(0.01, runs)  # never promote a real 5-point loss


def test_confidence_bound_rarely_excludes_a_true_drop_at_the_limit() -> None:
    """False promotions: a canary exactly at the allowed drop passes at most ~alpha."""
    alpha, runs = 0.05, 3000
    _, passed = _simulate(0.10, 0.15, 20, 20, 300, alpha, runs, seed=13)
    assert passed <= alpha + _tolerance(alpha, runs)


@settings(max_examples=30, deadline=None)
@given(st_.lists(st_.tuples(st_.integers(0, 20), st_.integers(0, 20)), min_size=1, max_size=30))
def test_confidence_bound_never_widens(blocks: list[tuple[int, int]]) -> None:
    """The bound is a running intersection: new data can only tighten it, so a stage
    that passed is not "un-passed" by a noisy minute (a real loss fails on its own)."""
    state = st.new_gate_state(0.03)
    previous = 1.0
    for bad_c, bad_t in blocks:
        state = st.add_block(state, st.Block(bad_c, 60, bad_t, 60))
        bound = st.evaluate(state, 0.03, 0.01, 0).upper_bound
        assert bound <= previous
        previous = bound


def test_fail_margin_tolerates_a_loss_within_it() -> None:
    """With ``fail_margin`` (fail only beyond a tolerated loss) a canary exactly at the
    margin is rolled back at most ~alpha, and a loss well beyond it is still caught."""
    alpha, runs = 0.05, 2000
    at_margin, _ = _simulate(0.10, 0.12, 20, 20, 300, alpha, runs, seed=17, fail_margin=0.02)
    assert at_margin <= alpha + _tolerance(alpha, runs)
    beyond, _ = _simulate(0.10, 0.17, 20, 20, 300, alpha, 500, seed=19, fail_margin=0.02)
    assert beyond >= 0.9


# ----------------------------------------------------------------------------- fail margin


def test_default_fail_margin_is_half_the_allowed_drop() -> None:
    state = st.new_gate_state(0.03)
    assert state.fail_margin == pytest.approx(0.015)
    assert st.new_gate_state(0.03, fail_margin=0.0).fail_margin == 0.0
    with pytest.raises(st.GateInputError):
        st.new_gate_state(0.03, fail_margin=0.05)  # a fail margin beyond the allowed drop


def test_within_slo_canary_is_rarely_rolled_back_with_the_default_margin() -> None:
    """Issue 13.1: a canary 1 point worse with 3 points allowed. With margin 0 it was
    rolled back in ~99 % of rollouts; with the default margin (1.5 points) at most ~alpha."""
    alpha, runs = 0.05, 1500
    margin = st.default_fail_margin(0.03)
    failed, _ = _simulate(
        0.10, 0.11, 20, 20, 300, alpha, runs, seed=23, allowed_drop=0.03, fail_margin=margin
    )
    assert failed <= alpha + _tolerance(alpha, runs)
    without, _ = _simulate(0.10, 0.11, 20, 20, 300, alpha, 300, seed=23, allowed_drop=0.03)
    assert without >= 3 * alpha  # the old behaviour (margin 0), for contrast


@pytest.mark.parametrize("margin", [0.01, 0.03, 0.1])
def test_better_canary_never_fails_when_control_is_almost_always_bad(margin: float) -> None:
    """The wrong-direction blow-up: with the control rate near 1, q_c + margin + d is
    capped below 1, the alternative falls inside the null and the bet grew with every
    *better* canary outcome. Guarded: such an alternative bets nothing."""
    state = st.new_gate_state(0.1, fail_margin=margin)
    for _ in range(200):
        state = st.add_block(state, st.Block(99, 100, 50, 100))  # canary far better
    assert state.max_log_e_fail <= 0.0
    result = st.evaluate(state, 0.1, 0.01, 0)
    assert result.verdict != Verdict.FAIL
    # the kernel itself: no positive bet for a better canary at any grid point
    log_e = st.fail_block_log_e(99, 100, 50, 100, 990, 1000, st.fail_grid(0.1), margin)
    assert float(np.max(log_e)) <= 0.0


def test_fail_margin_guard_keeps_validity_exactly() -> None:
    """With the guard, E[e] <= 1 on the margin's null line even where the cap bites."""
    margin, n_c, n_t = 0.03, 6, 6
    for p in (0.5, 0.9, 0.96, 0.969):
        for q_c_past in (0.5, 0.9, 0.97, 0.99):
            for d in st.fail_grid(0.05):
                q_c = float(st.plugin_control_rate(q_c_past * 1000, 1000))
                q_t = min(q_c + margin + d, 0.995)
                if q_t - q_c <= margin + 1e-9:
                    continue  # guarded: log e == 0
                assert _exact_expectation(n_c, n_t, q_c, q_t, margin, p) <= 1.0 + 1e-9
