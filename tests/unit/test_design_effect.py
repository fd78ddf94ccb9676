"""The design effect estimator (issue 13.2): ~1 for independent outcomes, ~1 + (m-1) rho
when each user sends m requests with intra-user correlation rho."""

from __future__ import annotations

import numpy as np
import pytest

from tierguard.api.enums import Verdict
from tierguard.operator import design_effect as de
from tierguard.operator import statistics as st
from tierguard.router.split import cluster_label


def _clustered_counts(
    rng: np.random.Generator, users: int, m: int, p: float, rho: float, k: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """(bad, total) per cluster for one arm: users with Beta(p, rho) rates, m requests."""
    if rho > 0:
        pu = rng.beta(p * (1 - rho) / rho, (1 - p) * (1 - rho) / rho, users)
    else:
        pu = np.full(users, p)
    bad_u = rng.binomial(m, pu)
    cluster = rng.integers(0, k, users)
    return np.bincount(cluster, bad_u, k), np.bincount(cluster, np.full(users, m), k)


@pytest.mark.parametrize(("m", "rho"), [(1, 0.0), (10, 0.0), (10, 0.05), (20, 0.05), (20, 0.2)])
def test_estimate_tracks_kish_design_effect(m: int, rho: float) -> None:
    rng = np.random.default_rng(3)
    estimates = []
    for _ in range(200):
        b1, n1 = _clustered_counts(rng, 400, m, 0.1, rho)
        b2, n2 = _clustered_counts(rng, 400, m, 0.1, rho)
        estimates.append(float(de.design_effect(np.stack([b1, b2]), np.stack([n1, n2]))))
    expected = 1 + (m - 1) * rho
    # clipped at 1 from below, so for rho = 0 the mean sits a little above 1
    assert np.median(estimates) == pytest.approx(expected, rel=0.2, abs=0.1)


def test_arm_difference_does_not_inflate_it() -> None:
    """Each arm is centred on its own rate: a real loss is not mistaken for clustering."""
    n = np.full((2, 16), 500.0)
    bad = np.stack([np.full(16, 50.0), np.full(16, 100.0)])  # 10 % vs 20 %, no spread
    assert float(de.design_effect(bad, n)) == 1.0


def test_too_few_clusters_is_one() -> None:
    assert float(de.design_effect([[5.0, 50.0]], [[100.0, 100.0]])) == 1.0
    assert de.cluster_of("10.0.0.1:8080#3") == "3" and de.cluster_of("pod") == ""


def test_router_cluster_label_is_bucket_mod_16() -> None:
    assert cluster_label(9_999) == "15" and cluster_label(16) == "0"
    assert cluster_label(None) == "none"


def test_gate_tempers_its_evidence_by_the_design_effect() -> None:
    """The same arm totals give less evidence when the clusters disagree wildly."""
    flat = {s: {str(c): (10.0, 100.0) for c in range(16)} for s in ("control", "canary")}
    wild = {s: {str(c): (0.0 if c % 2 else 20.0, 100.0) for c in range(16)} for s in flat}
    wild["canary"] = {str(c): (5.0 if c % 2 else 25.0, 100.0) for c in range(16)}
    flat["canary"] = {str(c): (15.0, 100.0) for c in range(16)}
    block = st.Block(160, 1600, 240, 1600)
    a = b = st.new_gate_state(0.03, fail_margin=0.0)
    for _ in range(5):
        a = st.add_block(a, block, flat)
        b = st.add_block(b, block, wild)
    assert a.design_effect == 1.0
    assert b.design_effect > 5
    assert a.log_e_fail == b.log_e_fail  # the raw e-process is the same ...
    assert b.max_log_e_fail < a.max_log_e_fail / 4  # ... the evidence counted is not
    again = st.GateState.from_json(b.to_json())
    assert again.clusters == b.clusters and again.design_effect == b.design_effect


def test_absolute_gate_uses_effective_counts() -> None:
    """A canary-only objective (ShadowDisagreement) is clustered too: its confidence
    bounds widen by the design effect."""
    wild = {"canary": {str(c): (0.0 if c % 2 else 40.0, 100.0) for c in range(16)}}
    flat = {"canary": {str(c): (20.0, 100.0) for c in range(16)}}
    block = st.Block(0, 0, 320, 1600)
    a = st.add_block(st.new_gate_state(0.3, kind="absolute"), block, flat)
    b = st.add_block(st.new_gate_state(0.3, kind="absolute"), block, wild)
    ra, rb = (st.evaluate(x, 0.3, 0.01, 100) for x in (a, b))
    assert ra.canary_rate == rb.canary_rate == 0.2
    assert b.design_effect > 10 and a.design_effect == 1.0
    assert ra.verdict == Verdict.PASS and rb.verdict == Verdict.INCONCLUSIVE
    assert rb.upper_bound > ra.upper_bound


def test_a_few_events_do_not_read_as_correlation() -> None:
    """One bad outcome per arm, each in a cluster with half the average requests, used to
    read as a design effect of ~2 (halving a healthy canary's evidence); below
    MIN_DESIGN_EVENTS events an arm adds no dispersion, while ten events packed into one
    cluster still show as clustering."""
    n = np.full((2, 16), 30.0)
    n[:, 15] = 15.0
    bad = np.zeros((2, 16))
    bad[:, 15] = 1.0
    assert float(de.design_effect(bad, n)) == 1.0
    packed = bad.copy()
    packed[:, 15] = float(de.MIN_DESIGN_EVENTS)
    assert float(de.design_effect(packed, n)) > 5.0
    # the rarer outcome counts: a bad rate near 1 with a single good outcome is as thin
    assert float(de.design_effect(n - bad, n)) == 1.0


def test_an_arm_below_the_minimum_leaves_the_other_arms_estimate() -> None:
    """A canary with two bad outcomes does not dilute (or inflate) what the control's
    clusters say."""
    n = np.full((2, 16), 100.0)
    control = np.where(np.arange(16) % 2, 0.0, 20.0)
    canary = np.zeros(16)
    canary[3] = 2.0
    both = float(de.design_effect(np.stack([control, canary]), n))
    alone = float(de.design_effect(control[None, :], n[:1]))
    assert both == pytest.approx(alone) and both > 5.0
