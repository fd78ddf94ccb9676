"""Slice gates (analysis.slices): the slice label mapping, the family alpha split, the
gate specs per (tier, slice value), and the state machine naming a failed slice."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pytest
from pydantic import ValidationError
from rolloutsim import T0, make_spec

from tierguard.api.enums import Arm, Phase, Reason, Signal, Verdict
from tierguard.api.policy import SLICE_OTHER, RoutingPolicySpec, SliceSpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout as r
from tierguard.operator.family import SLICE_SHARE, split_alpha
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.operator.statistics import ArmReading, GateInputError
from tierguard.router.decision_id import Decision, sign, verify
from tierguard.router.slicing import known_labels, slice_labels

CATEGORY = {"name": "category", "key": "category", "values": ["billing_status", "refunds"]}


def sliced_spec(**slice_fields: object) -> RoutingPolicySpec:
    spec = make_spec()
    doc = spec.to_k8s()
    doc["analysis"]["slices"] = [{**CATEGORY, **slice_fields}]
    return RoutingPolicySpec.model_validate(doc)


# --------------------------------------------------------------------------- labels


def test_metadata_value_maps_onto_declared_values_or_other() -> None:
    s = SliceSpec.model_validate(CATEGORY)
    assert slice_labels([s], {"metadata": {"category": " Billing_Status "}}, {}) == (
        ("category", "billing_status"),
    )
    for body in ({"metadata": {"category": "lottery"}}, {"metadata": {"category": 3}}, {}):
        assert slice_labels([s], body, {}) == (("category", SLICE_OTHER),)
    assert slice_labels([s], {"metadata": "not an object"}, None) == (("category", "other"),)


def test_header_source_is_case_insensitive_on_plain_dicts() -> None:
    s = SliceSpec.model_validate({**CATEGORY, "source": "Header", "key": "X-Category"})
    assert slice_labels([s], {}, {"x-category": "refunds"}) == (("category", "refunds"),)
    assert slice_labels([s], {"metadata": {"X-Category": "refunds"}}, {}) == (
        ("category", "other"),
    )


def test_classifier_source_takes_the_category_label() -> None:
    s = SliceSpec.model_validate(
        {"name": "category", "source": "Classifier", "values": ["refunds"]}
    )
    assert s.key is None
    body = {"metadata": {"category": "billing_status"}}  # metadata is not read
    assert slice_labels([s], body, {}, "refunds") == (("category", "refunds"),)
    assert slice_labels([s], body, {}, "billing_anomaly") == (("category", SLICE_OTHER),)
    assert slice_labels([s], body, {}, None) == (("category", SLICE_OTHER),)
    m = SliceSpec.model_validate(CATEGORY)
    assert slice_labels([s, m], body, {}, "refunds") == (
        ("category", "refunds"),
        ("category", "billing_status"),
    )


def test_slice_key_is_required_except_for_the_classifier() -> None:
    with pytest.raises(ValidationError, match="key is required for source Metadata"):
        SliceSpec.model_validate({"name": "c", "values": ["a"]})
    with pytest.raises(ValidationError, match="key must be unset or 'category'"):
        SliceSpec.model_validate({"name": "c", "source": "Classifier", "key": "x", "values": ["a"]})
    ok = {"name": "c", "source": "Classifier", "key": "category", "values": ["a"]}
    assert SliceSpec.model_validate(ok).key == "category"


def test_classifier_slice_problems_name_the_slice() -> None:
    from tierguard.router.slicing import classifier_slice_problems

    s = SliceSpec.model_validate(
        {"name": "topic", "source": "Classifier", "values": ["refunds", "lottery"]}
    )
    m = SliceSpec.model_validate(CATEGORY)
    assert classifier_slice_problems([m], ()) == []
    (no_head,) = classifier_slice_problems([s, m], ())
    assert "slice topic" in no_head and "no category head" in no_head
    (unknown,) = classifier_slice_problems([s], ("refunds", "billing_status"))
    assert "['lottery']" in unknown
    assert classifier_slice_problems([s], ("refunds", "lottery")) == []


def test_slice_spec_refuses_reserved_duplicate_and_too_many_values() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        SliceSpec.model_validate({**CATEGORY, "values": ["other"]})
    with pytest.raises(ValidationError, match="duplicate"):
        SliceSpec.model_validate({**CATEGORY, "values": ["a", "a"]})
    with pytest.raises(ValidationError):
        SliceSpec.model_validate({**CATEGORY, "values": [f"v{i}" for i in range(21)]})
    with pytest.raises(ValidationError, match="too many slice gates"):
        doc = make_spec().to_k8s()
        doc["analysis"]["slices"] = [
            {"name": f"s{j}", "key": "c", "values": [f"v{i}" for i in range(20)]} for j in range(2)
        ]  # 2 ThumbsDown SLOs x 42 values
        RoutingPolicySpec.model_validate(doc)
    with pytest.raises(ValidationError, match="duplicate slice name"):
        doc = make_spec().to_k8s()
        doc["analysis"]["slices"] = [CATEGORY, CATEGORY]
        RoutingPolicySpec.model_validate(doc)


def test_decision_id_carries_slices_and_feedback_keeps_only_declared_ones() -> None:
    key = b"k" * 32
    d = Decision("p", "simple", "canary", "small", 1000, "r1", "3", (("category", "refunds"),))
    back = verify(sign(d, key), key, now=1000, ttl_s=60)
    assert back == d
    s = SliceSpec.model_validate({**CATEGORY, "values": ["billing_status"]})
    carried = (("category", "refunds"), ("gone", "x"))
    assert known_labels([s], carried) == (("category", "other"),)


# --------------------------------------------------------------------------- alpha


def test_family_alpha_split_sums_to_the_budget() -> None:
    assert split_alpha(0.05, 4, 0).tier == pytest.approx(0.0125)
    sp = split_alpha(0.05, 2, 22)
    assert sp.tier == pytest.approx(0.05 * (1 - SLICE_SHARE) / 2)
    assert 2 * sp.tier + 22 * sp.slice == pytest.approx(0.05)
    with pytest.raises(GateInputError):
        split_alpha(0.05, 2, 2, slice_share=1.0)


def test_slice_gates_per_value_and_other_on_sliced_signals_only() -> None:
    doc = make_spec().to_k8s()
    doc["analysis"]["slos"].append(
        {"tier": "simple", "signal": "Latency", "latencyObjective": "2s", "allowedDrop": 0.05}
    )
    doc["analysis"]["slices"] = [CATEGORY]
    gates = gate_specs(RoutingPolicySpec.model_validate(doc))
    sliced = [x for x in gates if x.slice_name is not None]
    assert {x.key for x in sliced} == {
        f"{t}/ThumbsDown@category={v}"
        for t in ("simple", "tricky")
        for v in ("billing_status", "refunds", "other")
    }
    assert all(x.signal != Signal.LATENCY for x in sliced)


# --------------------------------------------------------------------------- state machine

SHARES = {"billing_status": 0.10, "refunds": 0.02, "other": 0.88}


@dataclass
class SlicedTraffic:
    """Thumbs-down counters per (tier, arm, slice value); one slice ``category``."""

    bad_rates: dict[tuple[str, str], float]  # (arm, value) -> bad rate; default 0.10
    per_minute: float = 2000.0
    seed: int = 0
    counters: dict[tuple[str, str, str], list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def tick(self, weight: float, control_arm: Arm) -> None:
        for tier in ("simple", "tricky"):
            for value, share in SHARES.items():
                n = self.rng.poisson(self.per_minute * share)
                n_can = self.rng.binomial(n, weight / 100.0)
                for arm, count in (("canary", n_can), (control_arm.value, n - n_can)):
                    rate = self.bad_rates.get((arm, value), 0.10) if tier == "simple" else 0.10
                    c = self.counters.setdefault((tier, arm, value), [0.0, 0.0])
                    c[0] += self.rng.binomial(count, rate)
                    c[1] += count

    def observe(self, spec: RoutingPolicySpec, at: datetime) -> Observations:
        out: dict[str, GateReading] = {}
        for gs in gate_specs(spec):
            sums: dict[str, list[float]] = {}
            for (tier, arm, value), (bad, total) in self.counters.items():
                if tier == gs.tier and gs.slice_value in (None, value):
                    c = sums.setdefault(arm, [0.0, 0.0])
                    c[0] += bad
                    c[1] += total
            arms = {arm: ArmReading.of(b, t) for arm, (b, t) in sums.items() if t > 0}
            out[gs.key] = GateReading(arms=arms, requests_flowing=True)
        return Observations(at=at, gates=out)


def drive(spec: RoutingPolicySpec, traffic: SlicedTraffic, minutes: int) -> list[r.Decision]:
    from datetime import timedelta

    st = RoutingPolicyStatus()
    out = []
    for i in range(minutes):
        now = T0 + timedelta(minutes=i)
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm)
        obs = traffic.observe(spec, now) if r.evaluation_due(spec, st, now) else None
        d = r.reconcile(spec, st, now, generation=1, observations=obs)
        out.append(d)
        st = RoutingPolicyStatus.model_validate(d.status.to_k8s())
    return out


def test_loss_in_one_slice_rolls_back_naming_tier_and_slice() -> None:
    spec = sliced_spec()
    loss = SlicedTraffic({("canary", "billing_status"): 0.45}, seed=4)
    ds = drive(spec, loss, 120)
    st = ds[-1].status
    assert st.phase == Phase.ROLLED_BACK
    events = [e for d in ds for e in d.events if e.reason == Reason.GATE_FAILED.value]
    assert len(events) == 1
    assert events[0].message.startswith(
        "tier simple, slice category=billing_status failed on ThumbsDown at"
    )
    simple = next(t for t in st.tiers if t.tier == "simple")
    failed = [s for s in simple.signals if s.verdict == Verdict.FAIL]
    assert [s.slice for s in failed] == ["category=billing_status"]
    assert simple.signals[0].slice is None, "the tier's own gate comes first"


def test_a_slice_with_little_traffic_does_not_hold_promotion_unless_it_must() -> None:
    ds = drive(sliced_spec(), SlicedTraffic({}, seed=5), 240)
    assert ds[-1].status.phase == Phase.PROMOTED
    refunds = [
        s
        for t in ds[-1].status.tiers
        for s in t.signals
        if s.slice == "category=refunds" and s.verdict == Verdict.INCONCLUSIVE
    ]
    assert refunds, "the thin slice stays Inconclusive and did not block"
    held = drive(sliced_spec(minSamples=2000), SlicedTraffic({}, seed=5), 90)
    assert held[-1].status.phase == Phase.PROGRESSING
    assert held[-1].status.step == 0


# --------------------------------------------------------------------------- readings


def test_slice_gates_read_their_value_from_one_query_per_slice() -> None:
    from test_observe_gates import FakeReader, row

    from tierguard.operator import observe as o
    from tierguard.operator import promql
    from tierguard.operator.observeslices import slice_signal_queries

    bad_q, total_q = slice_signal_queries(Signal.THUMBS_DOWN, "shop", "category")
    assert total_q == (
        "sum by (tier, arm, instance, slice_value, cluster) "
        '(tierguard_slice_feedback_total{policy="shop", slice="category"})'
    )
    assert 'rating="down"' in bad_q
    requests_q = promql.signal_queries(Signal.ERROR_RATE, "shop")[1]
    reader = FakeReader(
        {
            total_q: [
                row("simple", "canary", 10, slice_value="billing_status", cluster="3"),
                row("simple", "control", 90, slice_value="billing_status", cluster="3"),
                row("simple", "canary", 40, slice_value="other", cluster="3"),
            ],
            bad_q: [row("simple", "canary", 6, slice_value="billing_status", cluster="3")],
            requests_q: [row("simple", "canary", 500)],
        }
    )
    gates = gate_specs(sliced_spec())
    obs = o.observe(reader, "shop", gates, T0)
    billing = obs.gates["simple/ThumbsDown@category=billing_status"]
    assert billing.arms["canary"].total == {"r1#3": 10.0}
    assert billing.arms["canary"].bad == {"r1#3": 6.0}
    assert billing.arms["control"].total == {"r1#3": 90.0}
    assert obs.gates["simple/ThumbsDown@category=other"].arms["canary"].total == {"r1#3": 40.0}
    refunds = obs.gates["simple/ThumbsDown@category=refunds"]
    assert refunds.empty and refunds.requests_flowing
    assert reader.asked.count(total_q) == 1, "one query serves every value of the slice"
