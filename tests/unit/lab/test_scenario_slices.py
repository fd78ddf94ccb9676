"""The lab's slice-trap policy on the operator's own state machine, without a cluster: at
the disagreement rates the lab's fake Agreement judge produces and a conservative request
rate for a busy 2-core machine, the trapped slice's gate rolls the rollout back at the
first stage, naming the slice, while the tier's own gate does not fail; in a healthy
world the same policy (slice minSamples included) advances (the e2e test runs the real
thing)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import numpy as np

from tierguard.api.enums import Phase, Verdict
from tierguard.api.policy import SLICE_OTHER, RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_slices as sl
from tierguard.lab import scenarios as sc
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gatetypes import GateReading, Observations
from tierguard.operator.statistics import ArmReading

T0 = datetime(2026, 1, 1, tzinfo=UTC)
LOOK_S = 5
#: simple-tier requests per second: the lab asks 80 requests/s, ~64 % of them simple; on a
#: busy machine count on about half of that
SIMPLE_RPS = 25.0
SERIES = 8
#: share of the simple tier per slice value (the classifier's label) and the fake
#: Agreement judge's disagreement rate there (either answer bad)
SHARES = {"billing_status": 0.20, "opening_hours": 0.10, "order_tracking": 0.23, SLICE_OTHER: 0.47}
FLOOR = 1 - sl.SLICE_TRAP_SIMPLE_QUALITY
TRAP_RATE = FLOOR + sl.SLICE_TRAP_LOSS
#: the e2e budget for the decision (rollout time)
DECIDED_WITHIN_S = 240


def _spec() -> RoutingPolicySpec:
    doc = lp.lab_policy(
        sc.get("slice-trap"),
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )
    return RoutingPolicySpec.model_validate(doc["spec"])


def _spread(x: float) -> dict[str, float]:
    return {f"r1#{k}": x / SERIES for k in range(SERIES)}


def _reading(arms: Mapping[str, tuple[float, float]]) -> GateReading:
    return GateReading(
        arms={a: ArmReading(bad=_spread(b), total=_spread(n)) for a, (b, n) in arms.items()},
        requests_flowing=True,
    )


def _drive(trap: bool, seconds: int, seed: int = 17) -> tuple[RoutingPolicyStatus, int]:
    """Reconcile every 5 s with cumulative counters drawn at the lab's rates; returns the
    status and the second it stopped at (rolled back, or left the first step)."""
    spec = _spec()
    rng = np.random.default_rng(seed)
    st = r.reconcile(spec, None, T0).status
    first_weight = st.canary_weight
    # cumulative (bad, total) per (value, arm) for judged answers (canary) and requests
    judged = {v: [0.0, 0.0] for v in SHARES}
    requests = {(v, a): 0.0 for v in SHARES for a in ("control", "canary")}
    for i in range(1, seconds // LOOK_S + 1):
        w = st.canary_weight / 100.0
        for v, share in SHARES.items():
            rate = TRAP_RATE if trap and v == sl.SLICE_TRAP_CATEGORY else FLOOR
            n_canary = rng.poisson(SIMPLE_RPS * LOOK_S * w * share)
            judged[v][0] += rng.binomial(n_canary, rate)
            judged[v][1] += n_canary
            requests[(v, "canary")] += n_canary
            requests[(v, "control")] += rng.poisson(SIMPLE_RPS * LOOK_S * (1 - w) * share)
        readings: dict[str, GateReading] = {}
        for gate in gate_specs(spec):
            values = [gate.slice_value] if gate.slice_value is not None else list(SHARES)
            if gate.signal.value == "ShadowDisagreement":
                bad = sum(judged[v][0] for v in values)
                n = sum(judged[v][1] for v in values)
                readings[gate.key] = _reading({"canary": (bad, n)})
            else:  # ErrorRate, Latency: healthy providers, nothing bad
                readings[gate.key] = _reading(
                    {a: (0.0, sum(requests[(v, a)] for v in values)) for a in ("control", "canary")}
                )
        now = T0 + timedelta(seconds=LOOK_S * i)
        obs = Observations(at=now, gates=readings)
        st = r.reconcile(spec, st, now, observations=obs).status
        if st.phase != Phase.PROGRESSING or st.canary_weight != first_weight:
            return st, LOOK_S * i
    return st, seconds


def test_the_trapped_slice_rolls_back_the_first_stage_naming_the_slice() -> None:
    st, t = _drive(trap=True, seconds=480)
    assert st.phase == Phase.ROLLED_BACK, st.message
    assert st.history[-1].step == 0, st.history[-1]
    assert f"slice {sl.slice_name_value()} failed on ShadowDisagreement" in st.message
    assert t <= DECIDED_WITHIN_S, f"decided after {t} s"
    simple = next(x for x in st.tiers if x.tier == "simple")
    own = next(s for s in simple.signals if s.signal == "ShadowDisagreement" and s.slice is None)
    assert own.verdict != Verdict.FAIL, own  # the tier looks fine
    trapped = next(s for s in simple.signals if s.slice == sl.slice_name_value())
    assert trapped.verdict == Verdict.FAIL


def test_a_healthy_candidate_leaves_the_first_stage() -> None:
    """No deadlock in the policy: with slice minSamples every value (an Absolute gate
    counts the canary only) can pass, and the stage advances."""
    st, _ = _drive(trap=False, seconds=480)
    assert st.phase == Phase.PROGRESSING and st.canary_weight == sl.SLICE_TRAP_STEPS[1], st.message
