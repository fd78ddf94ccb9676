"""Slice gates end to end: a real router process exporting slice counters, a real
Prometheus scraping it, the operator (least-privilege subprocess) against a real
kube-apiserver. The candidate answers one category of the simple tier badly; the loss
is too small on the tier to fail its gate (failMargin 0.45, a third of the tier's
traffic), and the slice gate rolls the rollout back, naming tier and slice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from test_operator import Cluster, _phase

from operatorkit import OperatorProcess, Routed
from tierguard.api.enums import Phase, Reason, Verdict

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

POLICY = "sliced"


def billing_every_third(tier: str, i: int) -> str:
    """A third of the simple tier's requests are billing_status questions."""
    return "billing_status" if tier == "simple" and (i // 2) % 3 == 0 else tier


def test_a_loss_in_one_slice_rolls_back_naming_tier_and_slice(
    operator: OperatorProcess,
    kube_api: ApiClient,
    namespace: str,
    routed: Routed,
    wait_for: Any,
) -> None:
    cluster = Cluster(kube_api, namespace, POLICY)
    with routed(POLICY, {"billing_status": 0.0}, category=billing_every_third) as rs:
        rs.serve(
            steps=[50, 100],
            slos=[
                {"tier": t, "signal": "ThumbsDown", "allowedDrop": 0.5, "failMargin": 0.45}
                for t in ("simple", "complex")
            ],
            slices=[
                {"name": "category", "key": "category", "values": ["billing_status", "refunds"]}
            ],
        )
        st = wait_for(
            _phase(cluster, Phase.ROLLED_BACK),
            timeout=300,
            message=f"never rolled back; operator log:\n{operator.log()}",
        )
    assert st.message.startswith("tier simple, slice category=billing_status failed on ThumbsDown")
    simple = next(t for t in st.tiers if t.tier == "simple")
    assert simple.verdict == Verdict.FAIL
    by_slice = {s.slice: s for s in simple.signals}
    assert by_slice[None].verdict != Verdict.FAIL, "the tier's own gate did not fail"
    assert by_slice["category=billing_status"].verdict == Verdict.FAIL
    assert by_slice["category=billing_status"].canary.rate == 1.0
    assert by_slice["category=refunds"].verdict != Verdict.FAIL
    assert by_slice["category=refunds"].canary.samples == 0, "nobody asked about refunds"

    events = wait_for(
        lambda: cluster.events(Reason.GATE_FAILED.value), timeout=30, message="a GateFailed Event"
    )
    assert "tier simple, slice category=billing_status" in events[0].message
