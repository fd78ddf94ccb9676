"""A tiny traffic simulator for the state machine tests: cumulative counters per arm,
as a Prometheus instant query would return them, driven by a seeded RNG."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from tierguard.api.enums import Arm
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.operator.statistics import ArmReading

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_spec(**rollout: object) -> RoutingPolicySpec:
    doc = {
        "models": [
            {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
            {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
        ],
        "classifier": {
            "tiers": [
                {"name": "simple", "threshold": 0.5},
                {"name": "tricky", "threshold": 0.5},
                {"name": "complex"},
            ]
        },
        "routes": [
            {"tier": "simple", "baseline": "big", "candidate": "small"},
            {"tier": "tricky", "baseline": "big", "candidate": "small"},
            {"tier": "complex", "baseline": "big"},
        ],
        "rollout": {
            "steps": [5, 25, 50, 100],
            "interval": "1m",
            "bakeTime": "5m",
            "minSamplesPerArm": 200,
            "maxStepDuration": "3h",
            "holdbackPercent": 5,
            **rollout,
        },
        "analysis": {
            "confidence": 0.95,
            "slos": [
                {"tier": "simple", "signal": "ThumbsDown", "allowedDrop": 0.05},
                {"tier": "tricky", "signal": "ThumbsDown", "allowedDrop": 0.05},
            ],
        },
    }
    return RoutingPolicySpec.model_validate(doc)


@dataclass
class Traffic:
    """Per-tier bad rates per arm and request rate per minute; counters accumulate."""

    rates: dict[str, dict[str, float]]  # tier -> arm -> bad rate
    per_minute: float = 400.0
    seed: int = 0
    counters: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed)

    def tick(self, weight: float, control_arm: Arm, minutes: float = 1.0) -> None:
        for tier, arms in self.rates.items():
            n = self.rng.poisson(self.per_minute * minutes)
            n_can = self.rng.binomial(n, weight / 100.0)
            for arm, count in (("canary", n_can), (control_arm.value, n - n_can)):
                bad = self.rng.binomial(count, arms.get(arm, arms["control"]))
                c = self.counters.setdefault((tier, arm), [0.0, 0.0])
                c[0] += bad
                c[1] += count

    def observe(self, spec: RoutingPolicySpec, at: datetime) -> Observations:
        out: dict[str, GateReading] = {}
        for gs in gate_specs(spec):
            arms = {}
            for (tier, arm), (bad, total) in self.counters.items():
                if tier == gs.tier:
                    arms[arm] = ArmReading.of(bad, total)
            out[gs.key] = GateReading(arms=arms)
        return Observations(at=at, gates=out)


def drive(
    spec: RoutingPolicySpec,
    traffic: Traffic,
    minutes: int,
    *,
    roundtrip: bool = False,
    status: RoutingPolicyStatus | None = None,
    start: datetime = T0,
    dead_prometheus: range | None = None,
) -> tuple[RoutingPolicyStatus, list[r.Decision]]:
    """Run the machine once a minute for ``minutes``; optionally persist and reload the
    status between calls (as the operator does through the API server)."""
    decisions: list[r.Decision] = []
    st = status or RoutingPolicyStatus()
    for i in range(minutes):
        now = start + timedelta(minutes=i)
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm)
        obs = None
        if r.evaluation_due(spec, st, now):
            if dead_prometheus is not None and i in dead_prometheus:
                obs = Observations(at=now, error="connection refused")
            else:
                obs = traffic.observe(spec, now)
        d = r.reconcile(spec, st, now, generation=1, observations=obs)
        decisions.append(d)
        st = d.status
        if roundtrip:
            st = RoutingPolicyStatus.model_validate(st.to_k8s())
    return st, decisions
