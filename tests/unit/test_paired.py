"""The paired sequential test (issue 13.4a): exact betting e-process on worse/better/tie."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tierguard.api.enums import Verdict
from tierguard.operator import paired as p
from tierguard.operator import statistics as st


def _run(
    w: float, b: float, blocks: int, per_block: int, runs: int, seed: int
) -> tuple[float, float]:
    """Fraction of runs that ever FAIL and that ever PASS, alpha 0.05."""
    rng = np.random.default_rng(seed)
    failed = passed = 0
    for _ in range(runs):
        state = st.new_paired_state(0.03)
        ever_pass = False
        for _ in range(blocks):
            worse, better, ties = rng.multinomial(per_block, [w, b, 1 - w - b])
            state = st.paired_update(state, float(worse), float(better), float(ties))
            r = st.evaluate_paired(state, 0.05, 100)
            if r.verdict == Verdict.FAIL:
                failed += 1
                break
            ever_pass = ever_pass or r.verdict == Verdict.PASS
        passed += ever_pass
    return failed / runs, passed / runs


def test_identical_models_rarely_fail_and_do_pass() -> None:
    failed, passed = _run(0.08, 0.08, 100, 30, 200, seed=1)
    assert failed <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)
    assert passed >= 0.9


def test_a_loss_exactly_at_the_fail_margin_fails_at_most_alpha() -> None:
    """Net 1.5 points of requests worse = the default margin (half of 3 points)."""
    failed, _ = _run(0.095, 0.08, 100, 30, 200, seed=2)
    assert failed <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 200)


def test_a_five_point_loss_is_caught_and_never_passes() -> None:
    failed, passed = _run(0.12, 0.07, 100, 30, 100, seed=3)
    assert failed >= 0.9
    assert passed <= 0.05


def test_exact_expectation_under_the_null_is_at_most_one() -> None:
    """One outcome, any distribution on {-1, 0, +1} with mean <= m: E[factor] <= 1."""
    for m in (0.0, 0.015, 0.1):
        cap = 1 / (1 + m)
        for w in np.linspace(0, 1, 21):
            for b in np.linspace(0, 1 - w, 11):
                if w - b > m + 1e-12:
                    continue
                for f in p.BET_FRACTIONS:
                    lam = f * cap
                    e = (
                        w * (1 + lam * (1 - m))
                        + b * (1 + lam * (-1 - m))
                        + (1 - w - b) * (1 - lam * m)
                    )
                    assert e <= 1 + 1e-12


def test_state_round_trips_and_rejects_bad_input() -> None:
    s = st.paired_update(st.new_paired_state(0.03), 3, 1, 10)
    assert st.PairedState.from_json(s.to_json()) == s
    assert s.fail_margin == pytest.approx(0.015)
    with pytest.raises(p.PairedInputError):
        st.paired_update(s, -1, 0, 0)
    with pytest.raises(p.PairedInputError):
        st.new_paired_state(0.03, fail_margin=0.05)
    assert st.evaluate_paired(st.new_paired_state(0.03), 0.05, 10).verdict == Verdict.NO_DATA
