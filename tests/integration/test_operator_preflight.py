"""Pre-flight (issue 16) against the real thing: kube-apiserver + etcd, Prometheus
scraping a real router process, the operator as a subprocess; only the LLM providers and
the pairwise judge are our fakes. The candidate serves nobody until pre-flight passed.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_operator import POLICY, Cluster, _phase
from test_operator import cluster as cluster

from operatorkit import OperatorProcess, Routed, RoutedSystem
from tierguard.api.enums import Phase, PreFlightState, Reason
from tierguard.api.status import RoutingPolicyStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

PRICE = {"inputPerMillionTokens": 10, "outputPerMillionTokens": 10}
#: targetPairsPerHour of the sized test: two pairs a second per tier, so its 30 pairs come
#: in about 15 s while the test's traffic (tens of requests a second) still gets sized
#: to a share below 1
FAST_PAIRS_PER_HOUR = 7200


def _preflight_manifest(rs: RoutedSystem, **preflight: Any) -> dict[str, Any]:
    """The pairwise manifest with pre-flight on (every request mirrored) and prices on
    the candidate and the judge, so spend is counted."""
    conf = {"sampleRate": 1.0, "minPairs": 30, **preflight}
    return rs.manifest(
        judge_url=rs.big,
        preflight={k: v for k, v in conf.items() if v is not None},  # None: leave it unset
        pricing={"small": PRICE, "judge": PRICE},
    )


def _in_preflight(cluster: Cluster) -> Any:
    """Pre-flight runs and the judge has been asked (a verdict or an error counted)."""

    def check() -> RoutingPolicyStatus | None:
        st = cluster.status()
        pf = st.preflight
        if pf is None or pf.state != PreFlightState.RUNNING:
            return None
        return st if any(t.judge.judged + t.judge.errors > 0 for t in pf.tiers) else None

    return check


def test_a_healthy_candidate_passes_pre_flight_then_serves_the_first_step(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY) as rs:
        # sampleRate unset: sized from the tiers' request rates read from Prometheus, for
        # FAST_PAIRS_PER_HOUR (at the default 450 an hour, 30 pairs would take 4 minutes)
        rs.serve(_preflight_manifest(rs, sampleRate=None, targetPairsPerHour=FAST_PAIRS_PER_HOUR))

        def ended() -> RoutingPolicyStatus | None:
            st = cluster.status()
            pf = st.preflight
            return st if pf is not None and pf.state != PreFlightState.RUNNING else None

        st = wait_for(
            ended,
            timeout=300,
            message=f"pre-flight never ended; operator log:\n{operator.log()}",
        )
    # (the stages after it are quick here: the fake candidate is as good as the baseline)
    assert st.preflight is not None and st.preflight.state == PreFlightState.PASSED, st.message
    passed = [h for h in st.history if h.reason == Reason.PREFLIGHT_PASSED.value]
    assert passed and "0 users exposed" in passed[0].message
    assert passed[0].weight == 10.0 and passed[0].step == 0, "then the first weighted step"
    before = st.history[: st.history.index(passed[0])]
    assert before and all(h.weight == 0.0 for h in before), "nobody served during pre-flight"
    for t in st.preflight.tiers:
        assert t.verdict.value == "Pass" and t.judge.judged >= 30 and t.judge.healthy
        # sized from the tier's measured request rate: the share depends on how fast this
        # machine drives the test's traffic (the arithmetic: unit tests of rate_for)
        assert 0.0 < t.sample_rate <= 1.0
        assert t.judge.worse == 0 and t.judge.better == 0  # all ties: as good as the baseline
    assert st.preflight.spend_usd > 0, "mirrored and judge calls are priced"
    assert cluster.events(Reason.PREFLIGHT_PASSED.value)
    (started,) = cluster.events(Reason.PREFLIGHT_STARTED.value)
    sized = f"sized from traffic (~{FAST_PAIRS_PER_HOUR} pairs/h)"
    assert sized in started.message, started.message


def test_a_worse_candidate_is_rolled_back_at_pre_flight_with_zero_users_exposed(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    with routed(POLICY, {"complex": 0.3}) as rs:
        rs.serve(_preflight_manifest(rs))
        st = wait_for(
            _phase(cluster, Phase.ROLLED_BACK),
            timeout=300,
            message=f"never rolled back; operator log:\n{operator.log()}",
        )
    assert st.history[-1].reason == Reason.PREFLIGHT_FAILED.value
    assert "0 users exposed" in st.message and "tier complex" in st.message
    assert all(h.weight == 0.0 for h in st.history), "the candidate never served a user"
    assert st.preflight is not None and st.preflight.state == PreFlightState.FAILED
    tiers = {t.tier: t for t in st.preflight.tiers}
    assert tiers["complex"].verdict.value == "Fail"
    assert tiers["complex"].judge.worse > tiers["complex"].judge.better
    (event,) = cluster.events(Reason.PREFLIGHT_FAILED.value)
    assert event.type == "Warning" and "0 users exposed" in event.message


def test_a_stalled_judge_holds_pre_flight_then_pauses_and_never_promotes(
    cluster: Cluster,
    operator: OperatorProcess,
    routed: Routed,
    wait_for: Any,
) -> None:
    from routerkit import http

    with routed(POLICY) as rs:
        status, _ = http("PATCH", f"{rs.big}/admin/profile/judge-1", {"hang_rate": 1.0})
        assert status == 200
        doc = rs.serve(_preflight_manifest(rs, maxDuration="1m")).manifest
        replicas = doc["spec"].get("router", {}).get("replicas", 2)
        during = wait_for(
            _in_preflight(cluster),
            timeout=120,
            message=f"no pre-flight judgements counted; operator log:\n{operator.log()}",
        )
        assert during.phase == Phase.PROGRESSING and during.step_display == "PreFlight/3"
        mirrors = {s["tier"]: (s["weight"], s.get("mirrorRate")) for s in cluster.split()}
        assert mirrors == {"simple": (0.0, 1.0), "complex": (0.0, 1.0)}
        # with the routers' budget epoch: the replicas + 1 surge share the default $200
        budget = cluster.router_config()["mirrorBudget"]
        assert budget["usdPerRouter"] == pytest.approx(200.0 / (replicas + 1), abs=1e-6)
        assert "JudgeUnhealthy" in during.message or "pre-flight" in during.message
        st = wait_for(
            _phase(cluster, Phase.PAUSED),
            timeout=300,
            message=f"pre-flight never paused; operator log:\n{operator.log()}",
        )

        def stopped() -> list[dict[str, Any]] | None:
            split = cluster.split()
            return split if all(s.get("mirrorRate", 0.0) == 0.0 for s in split) else None

        # the status is written before the router objects are applied: wait for them
        split = wait_for(stopped, timeout=30, message="a pause stops mirroring")
    assert st.history[-1].reason == Reason.PREFLIGHT_CAP_REACHED.value, st.history
    assert "maxDuration 1m" in st.message and "never promoted" in st.message
    assert st.canary_weight == 0.0 and all(h.weight == 0.0 for h in st.history)
    assert st.preflight is not None and st.preflight.state == PreFlightState.HELD
    for t in st.preflight.tiers:
        assert t.verdict.value == "Inconclusive" and t.judge.judged == 0
    assert all(s.get("mirrorRate", 0.0) == 0.0 for s in split), "a pause stops mirroring"
    assert cluster.router_config().get("mirrorBudget") is None
