"""Scenario definitions: the numbers that make each story true, checked without a cluster."""

from __future__ import annotations

import pytest

from tierguard.api.enums import Phase, Signal
from tierguard.api.resource import RoutingPolicy
from tierguard.classifier.dataset import CATEGORIES
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_world as sw
from tierguard.lab import scenarios as sc
from tierguard.lab.population import query_pool
from tierguard.lab.scenario_preflight import LAB_PREFLIGHT_SAMPLE_RATE


def test_every_scenario_is_listed_and_found() -> None:
    assert set(sc.SCENARIOS) == {
        "healthy",
        "pareto-trap",
        "preflight-trap",
        "slice-trap",
        "threshold-trap",
        "aa",
        "prometheus-outage",
        "provider-outage",
    }
    for name in sc.SCENARIOS:
        assert sc.get(name).name == name


def test_unknown_scenario_names_the_valid_ones() -> None:
    with pytest.raises(sw.ScenarioError, match="healthy"):
        sc.get("nope")


def test_profiles_cover_every_category() -> None:
    for s in sc.SCENARIOS.values():
        assert set(s.cheap.quality) == set(CATEGORIES)
        assert set(s.capable.quality) == set(CATEGORIES)


def test_profile_refuses_missing_category_and_bad_quality() -> None:
    with pytest.raises(sw.ScenarioError, match="no quality"):
        sw.ProviderProfile("x", {"account_lookup": 0.9})
    q = dict.fromkeys(CATEGORIES, 0.9) | {"billing_status": 1.5}
    with pytest.raises(sw.ScenarioError, match="not in"):
        sw.ProviderProfile("x", q)


def test_healthy_cheap_is_as_good_on_simple_queries() -> None:
    s = sc.get("healthy")
    assert sc.tier_quality(s.cheap, "simple") == pytest.approx(sc.tier_quality(s.capable, "simple"))
    assert s.expect.phase is Phase.PROMOTED


def test_healthy_is_time_scaled_but_keeps_every_step() -> None:
    """Its traffic thins only the complex categories (the simple tier's canary, where the
    pairs come from, gets a larger share) and its stages bake shorter; the steps stay."""
    s = sc.get("healthy")
    keep = s.traffic.category_keep
    assert set(keep) == {c for c, t in CATEGORIES.items() if t == "complex"}
    assert all(0 < v < 1 for v in keep.values())
    pool = query_pool(s.traffic)
    simple = sum(CATEGORIES[e.category] == "simple" for e in pool) / len(pool)
    assert simple > 0.8, simple  # 65 % without the thinning
    doc = lp.lab_policy(s, cheap_url="x", capable_url="y", judge_url="z", prometheus_url="p")
    assert doc["spec"]["rollout"]["bakeTime"] == sc.HEALTHY_BAKE_TIME == "10s"
    assert doc["spec"]["rollout"]["steps"] == list(lp.LAB_STEPS)
    other = lp.lab_policy(
        sc.get("pareto-trap"), cheap_url="x", capable_url="y", judge_url="z", prometheus_url="p"
    )
    assert other["spec"]["rollout"]["bakeTime"] == lp.LAB_BAKE_TIME


def test_pareto_trap_simple_tier_drops_5_points_but_aggregate_moves_little() -> None:
    """The issue's definition of the trap, in the scenario's own numbers."""
    s = sc.get("pareto-trap")
    drop = sc.tier_quality(s.capable, "simple") - sc.tier_quality(s.cheap, "simple")
    assert drop >= 0.05
    # only one category fails, and the classifier's categories call it simple
    worse = [c for c in CATEGORIES if s.cheap.quality[c] < s.capable.quality[c]]
    simple_worse = [c for c in worse if CATEGORIES[c] == "simple"]
    assert simple_worse == [sc.TRAP_CATEGORY]
    # aggregate across tiers: at the 5 % stage it moves by a fraction of a point ...
    before = sc.aggregate_quality(s.cheap, s.capable, 0.0)
    at_5 = sc.aggregate_quality(s.cheap, s.capable, 0.05)
    assert before - at_5 < 0.005
    # ... and even at 100 % it moves less than the simple tier does
    at_100 = sc.aggregate_quality(s.cheap, s.capable, 1.0)
    assert before - at_100 < drop
    assert s.expect.phase is Phase.ROLLED_BACK and s.expect.failed_tier == "simple"


def test_naive_aggregate_gate_would_not_notice_the_trap_even_at_100_percent() -> None:
    s = sc.get("pareto-trap")
    unsatisfied_at_100 = 1 - sc.aggregate_quality(s.cheap, s.capable, 1.0)
    assert unsatisfied_at_100 < lp.NAIVE_THUMBS_DOWN_CEILING


def test_aa_models_are_identical() -> None:
    s = sc.get("aa")
    assert dict(s.cheap.quality) == dict(s.capable.quality)
    assert s.cheap.latency_ms == s.capable.latency_ms


def test_outage_scenarios_schedule_a_stop_and_a_recovery() -> None:
    prom = sc.get("prometheus-outage")
    kinds = [e.kind for e in prom.events]
    assert kinds == ["prometheus_stop", "prometheus_start"]
    stop, start = prom.events
    assert start.after_s > stop.after_s
    prov = sc.get("provider-outage")
    outage, recovery = prov.events
    assert outage.profile is not None and outage.profile.rate_limited_rate > 0.5
    assert recovery.profile is not None and recovery.profile.rate_limited_rate == 0


@pytest.mark.parametrize("name", list(sc.SCENARIOS))
@pytest.mark.parametrize("naive", [False, True])
@pytest.mark.parametrize("preflight", [False, True])
def test_lab_policy_validates_against_the_api_models(
    name: str, naive: bool, preflight: bool
) -> None:
    s = sc.get(name)
    if preflight and s.slice_gates:
        with pytest.raises(sw.ScenarioError, match="pre-flight needs the pairwise judge"):
            sc.preflight_variant(s)
        return
    if preflight:
        s = sc.preflight_variant(s)
    if naive:
        s = sc.naive_variant(s)
    body = lp.lab_policy(
        s,
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )
    policy = RoutingPolicy.from_k8s(body)
    route = policy.spec.route("simple")
    assert (route.baseline, route.candidate) == ("capable", "cheap")
    signals = {slo.signal.value for slo in policy.spec.analysis.slos}
    if naive:
        assert signals == {"Custom"}
        query = policy.spec.analysis.slos[0].query
        assert query is not None
        assert "$tier" not in query.bad + query.total and "$arm" not in query.bad + query.total
    else:
        assert signals == {"ShadowDisagreement", "ErrorRate", "Latency"}
        shadow = next(
            s for s in policy.spec.analysis.slos if s.signal.value == "ShadowDisagreement"
        )
        assert shadow.objective == ("Absolute" if s.slice_gates else "RelativeToControl")
    assert policy.spec.router.shadow.judge.mode == (
        "Agreement" if s.slice_gates and not naive else "Pairwise"
    )
    assert bool(policy.spec.analysis.slices) is (s.slice_gates and not naive)
    assert policy.spec.rollout.steps == list(s.steps or lp.LAB_STEPS)
    pf = policy.spec.rollout.preflight
    assert pf.enabled is (s.preflight and not naive)
    if pf.enabled:
        assert pf.rate("simple") == LAB_PREFLIGHT_SAMPLE_RATE and pf.max_duration == "3m"


def test_naive_variant_expects_promotion() -> None:
    n = sc.naive_variant(sc.get("pareto-trap"))
    assert n.naive and n.expect.phase is Phase.PROMOTED and n.name == "pareto-trap-naive"


def test_events_fire_once_after_their_step_is_reached() -> None:
    from tierguard.lab.supervisor import due_events

    events = sc.get("prometheus-outage").events  # stop at step 1 + 5 s, start at + 30 s
    assert due_events(events, {0: 0.0}, set(), 100.0) == []
    assert due_events(events, {0: 0.0, 1: 50.0}, set(), 54.0) == []
    assert due_events(events, {0: 0.0, 1: 50.0}, set(), 55.0) == [0]
    assert due_events(events, {0: 0.0, 1: 50.0}, {0}, 81.0) == [1]
    assert due_events(events, {0: 0.0, 1: 50.0}, {0, 1}, 200.0) == []


def test_preflight_trap_is_pareto_trap_caught_at_pre_flight() -> None:
    trap, pareto = sc.get("preflight-trap"), sc.get("pareto-trap")
    assert trap.preflight and not pareto.preflight
    assert (trap.cheap, trap.capable, trap.traffic) == (
        pareto.cheap,
        pareto.capable,
        pareto.traffic,
    )
    assert trap.expect == sw.Expectation(
        Phase.ROLLED_BACK,
        failed_tier="simple",
        failed_signal=Signal.SHADOW_DISAGREEMENT,
        max_step=0,
        preflight="Failed",
    )
    # --preflight on pareto-trap is the same world and the same expectation
    variant = sc.preflight_variant(pareto)
    assert (variant.expect, variant.cheap) == (trap.expect, trap.cheap)
    assert sc.preflight_variant(variant) is variant
    healthy = sc.preflight_variant(sc.get("healthy"))
    assert healthy.expect.phase is Phase.PROMOTED and healthy.expect.preflight == "Passed"
    outage = sc.preflight_variant(sc.get("provider-outage"))
    assert outage.expect.preflight is None and outage.expect.failed_signal == Signal.ERROR_RATE
    assert not sc.naive_variant(trap).preflight


def test_slice_trap_hides_a_15_point_loss_below_the_tier() -> None:
    """Issue 17's numbers: 15 points in one simple category, the gates' arithmetic says the
    tier gate passes while the slice gate fails (the real kernels, the policy's alphas)."""
    from tierguard.lab import scenario_slices as sl
    from tierguard.operator.gatespecs import gate_specs
    from tierguard.operator.slicegates import family_split
    from tierguard.operator.statistics import absolute_bounds

    s = sc.get("slice-trap")
    worse = {c: s.capable.quality[c] - s.cheap.quality[c] for c in CATEGORIES}
    assert {c for c, d in worse.items() if d > 1e-9 and CATEGORIES[c] == "simple"} == {
        sl.SLICE_TRAP_CATEGORY
    }
    assert worse[sl.SLICE_TRAP_CATEGORY] == pytest.approx(0.15)
    assert not s.traffic.conversations and s.expect.failed_slice == "topic=opening_hours"
    body = lp.lab_policy(
        s,
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )
    spec = RoutingPolicy.from_k8s(body).spec
    (topic,) = spec.analysis.slices
    assert topic.source == "Classifier" and sl.SLICE_TRAP_CATEGORY in topic.values
    split = family_split(gate_specs(spec), spec.analysis.confidence)
    # the fake Agreement judge: two answers disagree when either is bad (capable misses 1 %)
    floor = 1 - sl.SLICE_TRAP_SIMPLE_QUALITY
    assert s.capable.quality[sl.SLICE_TRAP_CATEGORY] == sl.SLICE_TRAP_SIMPLE_QUALITY
    slice_rate = 1 - s.cheap.quality[sl.SLICE_TRAP_CATEGORY]
    tier_rate = 0.9 * floor + 0.1 * slice_rate  # the category is 10 % of the simple tier
    ceiling = sl.SLICE_TRAP_DISAGREEMENT_CEILING
    assert floor < tier_rate < ceiling < slice_rate
    # at 1,000 judged tier answers (100 of them in the slice) the tier gate passes; the
    # slice gate fails at 150
    _, tier_upper = absolute_bounds(tier_rate * 1000, 1000, split.tier)
    slice_lower, _ = absolute_bounds(slice_rate * 150, 150, split.slice)
    assert tier_upper <= ceiling < slice_lower
