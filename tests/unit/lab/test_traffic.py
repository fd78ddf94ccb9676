"""Simulated users: mix, sessions, ground truth, feedback and the tally."""

from __future__ import annotations

import base64
import json
import random
from collections import Counter

import pytest

from tierguard.classifier.dataset import CATEGORIES
from tierguard.lab import scenario_world as sw
from tierguard.lab import scenarios as sc
from tierguard.lab.population import Population
from tierguard.lab.responses import (
    answer_quality,
    decode_decision_id,
    is_good_answer,
    rating_for,
    route_info,
)
from tierguard.lab.tally import Outcome, RouteInfo, Tally


def _id(tier: str, arm: str, model: str) -> str:
    payload = json.dumps([1, "p", tier, arm, model, 1, "r"]).encode()
    return "chatcmpl-" + base64.urlsafe_b64encode(payload).rstrip(b"=").decode() + ".tag"


def test_population_follows_seed_003_mix() -> None:
    pop = Population(sw.TrafficSpec(users=300, seed=1))
    tiers = Counter(CATEGORIES[pop.next_request()[1].category] for _ in range(4000))
    simple = tiers["simple"] / 4000
    assert 0.60 < simple < 0.70


def test_population_users_come_back_in_sessions() -> None:
    pop = Population(sw.TrafficSpec(users=500, session_length=4.0, seed=2))
    users = [pop.next_request()[0] for _ in range(3000)]
    counts = Counter(users)
    assert len(counts) <= 500
    assert sum(counts.values()) / len(counts) > 2  # users send several requests
    assert all(u.startswith("user-") for u in counts)


def test_population_is_deterministic() -> None:
    a = Population(sw.TrafficSpec(seed=5))
    b = Population(sw.TrafficSpec(seed=5))
    assert [a.next_request() for _ in range(50)] == [b.next_request() for _ in range(50)]


def test_answer_quality_marker() -> None:
    assert answer_quality({"tierguard_fake": {"quality": "good"}}) is True
    assert answer_quality({"tierguard_fake": {"quality": "bad"}}) is False
    assert answer_quality({}) is None


def test_same_quality_means_same_answers_good() -> None:
    """A/A: identical profiles agree on every single query."""
    cap = sw.capable_profile()
    twin = cap.with_(name="cheap")
    pop = Population(sw.TrafficSpec(seed=3))
    for _ in range(500):
        _, ex = pop.next_request()
        assert is_good_answer(ex.text, ex.category, cap) == is_good_answer(
            ex.text, ex.category, twin
        )


def test_trap_profile_is_worse_only_on_the_trap_category() -> None:
    trap = sc.get("pareto-trap")
    pop = Population(sw.TrafficSpec(seed=4))
    diffs: Counter[str] = Counter()
    for _ in range(3000):
        _, ex = pop.next_request()
        if is_good_answer(ex.text, ex.category, trap.capable) and not is_good_answer(
            ex.text, ex.category, trap.cheap
        ):
            diffs[ex.category] += 1
    simple_diffs = {c for c in diffs if CATEGORIES[c] == "simple"}
    assert simple_diffs == {sc.TRAP_CATEGORY}


def test_rating_rate_and_direction() -> None:
    rng = random.Random(0)
    ratings = [rating_for(i % 2 == 0, 0.15, rng) for i in range(10000)]
    rated = [r for r in ratings if r is not None]
    assert 0.12 < len(rated) / len(ratings) < 0.18
    rng = random.Random(1)
    assert {rating_for(True, 1.0, rng) for _ in range(10)} == {"up"}
    assert {rating_for(False, 1.0, rng) for _ in range(10)} == {"down"}


def test_decision_id_and_headers() -> None:
    assert decode_decision_id(_id("simple", "canary", "cheap")) == RouteInfo(
        "simple", "canary", "cheap"
    )
    assert decode_decision_id("not-an-id") is None
    assert decode_decision_id("chatcmpl-!!!.x") is None
    headers = {
        "X-Tierguard-Tier": "complex",
        "X-Tierguard-Arm": "stable",
        "X-Tierguard-Model": "capable",
    }
    assert route_info(headers, {}) == RouteInfo("complex", "stable", "capable")
    assert route_info({}, {"id": _id("simple", "control", "capable")}) == RouteInfo(
        "simple", "control", "capable"
    )


def _o(
    user: str, arm: str, stage: int, satisfied: bool = True, rating: str | None = None
) -> Outcome:
    return Outcome(
        t=0.0,
        user=user,
        category="billing_status",
        true_tier="simple",
        route=RouteInfo("simple", arm, "cheap" if arm == "canary" else "capable"),
        status=200,
        latency_s=0.1,
        satisfied=satisfied,
        rating=rating,
        stage=stage,
        satisfied_if_baseline=True,
    )


def test_tally_counts_and_detects_arm_switches_within_a_stage_only() -> None:
    t = Tally()
    t.record(_o("u1", "control", 0))
    t.record(_o("u1", "canary", 0))  # a higher weight moves users baseline -> candidate
    assert t.arm_switches == 0
    t.record(_o("u1", "control", 0, satisfied=False, rating="down"))  # back: a violation
    assert t.arm_switches == 1
    t.record(_o("u1", "canary", -1))  # settling after a weight change: not judged
    t.record(_o("u1", "control", 1))  # after a rollback (new token): legitimate
    assert t.arm_switches == 1
    assert t.served[("simple", "control")] == 3 and t.served[("simple", "canary")] == 2
    assert t.satisfaction("simple", "control") == pytest.approx(2 / 3)
    assert t.thumbs_down_share() == pytest.approx(1.0)
    assert t.satisfied_if_baseline == 5
    failed = Outcome(0.0, "u2", "plan_change", "complex", None, 502, 1.0, None, None)
    t.record(failed)
    assert t.failed == 1 and t.requests == 6
    s = t.summary()
    assert s["served"]["simple/control"] == 3
    assert s["categories"]["billing_status"]["capable"]["served"] == 3


def test_slice_trap_traffic_makes_its_category_a_tenth_of_the_simple_tier() -> None:
    """The thinned pool, routed by the shipped classifier: the trap category is about
    10 % of the simple tier, by its true category and by the category head's label (the
    slice's source)."""
    from tierguard.classifier.runtime import default_model_path, load_classifier
    from tierguard.lab import scenario_slices as sl
    from tierguard.lab import scenario_world as sw
    from tierguard.lab import scenarios as sc
    from tierguard.lab.population import query_pool

    spec = sc.get("slice-trap").traffic
    pool = query_pool(spec)
    assert query_pool(spec) == pool  # deterministic
    full = query_pool(sw.TrafficSpec(seed=spec.seed))
    assert len(pool) < len(full)
    results = load_classifier(default_model_path()).classify_batch([e.text for e in pool])
    simple = [(e, r) for e, r in zip(pool, results, strict=True) if r.tier == "simple"]
    true_share = sum(e.category == sl.SLICE_TRAP_CATEGORY for e, _ in simple) / len(simple)
    label_share = sum(r.category == sl.SLICE_TRAP_CATEGORY for _, r in simple) / len(simple)
    assert 0.09 <= true_share <= 0.11
    assert 0.09 <= label_share <= 0.11
