"""The lab's threshold-trap: the scenario's world, its policy, the threshold edit as a
classifier change the operator shadows, and what the bundled classifier makes of the edit
on the lab's own traffic (the e2e test runs the real thing)."""

from __future__ import annotations

from collections import Counter

import pytest

from tierguard.api.enums import Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.classifier.dataset import CATEGORIES, generate
from tierguard.classifier.runtime import default_model_path, load_classifier
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_threshold as th
from tierguard.lab import scenario_world as sw
from tierguard.lab import scenarios as sc
from tierguard.operator import decisionshadow as ds


def _spec(threshold: float | None = None) -> RoutingPolicySpec:
    doc = lp.lab_policy(
        sc.get("threshold-trap"),
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )
    if threshold is not None:  # the merge patch the lab sends replaces spec.classifier.tiers
        doc["spec"]["classifier"].update(th.threshold_patch(threshold)["spec"]["classifier"])
    return RoutingPolicySpec.model_validate(doc["spec"])


def test_the_world_the_edit_and_the_expectation() -> None:
    s = sc.get("threshold-trap")
    assert s.cheap.quality[th.ANOMALY_CATEGORY] == th.THRESHOLD_TRAP_ANOMALY_QUALITY
    assert s.cheap.quality[th.ANOMALY_CATEGORY] < s.capable.quality[th.ANOMALY_CATEGORY] - 0.5
    for cat, tier in CATEGORIES.items():  # as good where it is meant to serve, not beyond
        if tier == sw.SIMPLE:
            assert s.cheap.quality[cat] == s.capable.quality[cat]
        else:
            assert s.cheap.quality[cat] <= s.capable.quality[cat] - 0.4
    (edit,) = s.events
    assert (edit.kind, edit.at_step, edit.threshold) == ("classifier_threshold", 0, 0.02)
    assert edit.after_s < float(lp.LAB_BAKE_TIME.rstrip("s"))  # before the model step ends
    assert s.classifier_threshold == th.STABLE_THRESHOLD
    assert s.expect == sw.Expectation(Phase.ROLLED_BACK, max_step=0, failed_cell="complex→simple")
    assert s.traffic.rating_rate >= 0.5 and not s.traffic.conversations
    assert s.steps == (50.0, 100.0)


def test_policy_names_the_classifier_and_a_short_shadow_and_canary() -> None:
    spec = _spec()
    assert [(t.name, t.threshold) for t in spec.classifier.tiers] == [
        ("simple", th.STABLE_THRESHOLD),
        ("complex", None),
    ]
    assert spec.classifier.source.config_map_ref is None  # the bundled model
    shadow, canary = spec.rollout.classifier_shadow, spec.rollout.classifier_canary
    assert shadow.enabled and shadow.min_requests == th.SHADOW_MIN_REQUESTS
    assert canary.enabled and canary.allowed_drop == th.CELL_ALLOWED_DROP
    # the classifier canary's only step: 50 % of sessions
    assert [w for w in spec.rollout.steps if w < 100] == [50.0]
    # other scenarios keep naming no classifier
    other = lp.lab_policy(
        sc.get("healthy"), cheap_url="x", capable_url="y", judge_url="z", prometheus_url="p"
    )
    assert "classifier" not in other["spec"]


def test_the_edit_is_a_classifier_change_the_operator_shadows() -> None:
    before, after = ds.snapshot(_spec(), ""), ds.snapshot(_spec(th.TRAP_THRESHOLD), "")
    assert ds.changed(before, after) and ds.tier_names(before) == ds.tier_names(after)
    assert not ds.changed(before, ds.snapshot(_spec(th.STABLE_THRESHOLD), ""))


def test_scenario_refuses_a_threshold_edit_without_a_classifier() -> None:
    with pytest.raises(sw.ScenarioError, match="needs a threshold"):
        sw.Event("classifier_threshold", at_step=0, after_s=1.0, label="x")
    s = sc.get("threshold-trap")
    with pytest.raises(sw.ScenarioError, match="needs classifier_threshold"):
        sw.Scenario(
            name="x", title="t", story="s", cheap=s.cheap, capable=s.capable, expect=s.expect,
            events=s.events,
        )  # fmt: skip


def test_the_bundled_classifier_moves_complex_queries_billing_anomaly_among_them() -> None:
    """What the edit does on the lab's query mix: at the stable threshold hardly any
    complex query is simple, at the trap's every complex category loses some to simple
    (billing_anomaly included) and the simple tier stays what it was."""
    classifier = load_classifier(default_model_path())
    examples = generate(3000, seed=3)
    probs = classifier.probabilities([e.text for e in examples])[:, 0]
    n = Counter(e.category for e in examples)
    moved: Counter[str] = Counter()
    simple_before: Counter[str] = Counter()
    for e, p in zip(examples, probs, strict=True):
        simple_before[e.category] += p >= th.STABLE_THRESHOLD
        moved[e.category] += th.TRAP_THRESHOLD <= p < th.STABLE_THRESHOLD
    complex_cats = [c for c, t in CATEGORIES.items() if t == sw.COMPLEX]
    for cat in complex_cats:
        assert simple_before[cat] / n[cat] < 0.06, cat
        assert 0.2 < moved[cat] / n[cat] < 0.45, cat
    down = sum(moved[c] for c in complex_cats) / len(examples)
    assert 0.07 < down < 0.15, down
