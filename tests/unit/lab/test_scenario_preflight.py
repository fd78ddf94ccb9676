"""The lab's compressed pre-flight (preflight-trap, --preflight) on the operator's own
state machine, without a cluster: at the verdict mix the lab's fake judge produces and
the pair rate its traffic gives, the trap fails at pre-flight within the cap and a
healthy candidate passes after minPairs (the e2e test runs the real thing)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tierguard.api.enums import Phase, PreFlightState, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenarios as sc
from tierguard.lab.scenario_preflight import LAB_PREFLIGHT_MIN_PAIRS
from tierguard.operator import rollout as r
from tierguard.operator.gatetypes import GateReading, Observations

T0 = datetime(2026, 1, 1, tzinfo=UTC)
VERDICTS = ("worse", "better", "tie", "inconsistent", "error")
CLUSTERS = 16
#: judged pairs per 5 s look: the lab mirrors every stateless request of the simple tier;
#: on a busy 2-core machine count on a few pairs a second (3 here), not the ten it can reach
PAIRS_PER_LOOK = 15
#: the e2e budget for a decision, well inside the 3 min cap
DECIDED_WITHIN_S = 90


def _spec(name: str) -> RoutingPolicySpec:
    doc = lp.lab_policy(
        sc.get(name) if name == "preflight-trap" else sc.preflight_variant(sc.get(name)),
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
    )
    return RoutingPolicySpec.model_validate(doc["spec"])


def _drive(
    spec: RoutingPolicySpec, share: dict[str, float], looks: int
) -> tuple[RoutingPolicyStatus, int]:
    """Reconcile every 5 s with cumulative mirror verdicts spread over the clusters;
    returns the status and the look it stopped at."""
    st = r.reconcile(spec, None, T0).status
    assert st.preflight is not None and st.preflight.state == PreFlightState.RUNNING
    total = dict.fromkeys(VERDICTS, 0.0)
    for i in range(1, looks + 1):
        for v, p in share.items():
            total[v] += p * PAIRS_PER_LOOK
        now = T0 + timedelta(seconds=5 * i)
        verdicts = {v: {f"r1#{k}": total[v] / CLUSTERS for k in range(CLUSTERS)} for v in VERDICTS}
        reading = GateReading(verdicts=verdicts, requests_flowing=True)
        obs = Observations(
            at=now,
            gates={"simple/ShadowDisagreement": reading},
            preflight_spend={"simple": {"r1": 0.001 * i}},
        )
        st = r.reconcile(spec, st, now, observations=obs).status
        if st.phase != Phase.PROGRESSING or st.canary_weight > 0:
            return st, i
    return st, looks


def test_the_trap_is_rolled_back_at_pre_flight_well_within_the_cap() -> None:
    # pareto-trap's simple tier: 8 to 11 % of pairs worse (the lower end here), the fake
    # judge's 3 % position bias and 2 % noise turn a few into inconsistent ties
    st, look = _drive(
        _spec("preflight-trap"), {"worse": 0.08, "tie": 0.87, "inconsistent": 0.05}, 24
    )
    assert st.phase == Phase.ROLLED_BACK, st.message
    assert st.history[-1].reason == Reason.PREFLIGHT_FAILED.value
    assert st.canary_weight == 0.0 and "0 users exposed" in st.message
    assert look * 5 <= DECIDED_WITHIN_S, f"decided after {look * 5} s"


def test_a_healthy_candidate_passes_pre_flight_after_min_pairs() -> None:
    st, look = _drive(_spec("healthy"), {"tie": 0.95, "inconsistent": 0.05}, 24)
    assert st.phase == Phase.PROGRESSING and st.canary_weight == lp.LAB_STEPS[0], st.message
    assert st.preflight is not None and st.preflight.state == PreFlightState.PASSED
    assert look * PAIRS_PER_LOOK >= LAB_PREFLIGHT_MIN_PAIRS and look * 5 <= DECIDED_WITHIN_S
