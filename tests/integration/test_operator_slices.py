"""Slice gates end to end: a real router process exporting slice counters, a real
Prometheus scraping it, the operator (least-privilege subprocess) against a real
kube-apiserver. The candidate answers one category of the simple tier badly; the loss
is too small on the tier to fail its gate (failMargin 0.45, a third of the tier's
traffic), and the slice gate rolls the rollout back, naming tier and slice."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from operatorkit import OperatorProcess, policy_manifest, routed_system
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import constants as c
from tierguard.api.enums import Phase, Reason, Verdict
from tierguard.api.status import RoutingPolicyStatus

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

POLICY = "sliced"


def billing_every_third(tier: str, i: int) -> str:
    """A third of the simple tier's requests are billing_status questions."""
    return "billing_status" if tier == "simple" and (i // 2) % 3 == 0 else tier


def test_a_loss_in_one_slice_rolls_back_naming_tier_and_slice(
    operator: OperatorProcess,
    kube_api: ApiClient,
    namespace: str,
    prometheus: Prometheus,
    tiny_classifier: Path,
    tmp_path: Path,
    wait_for: Any,
) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(kube_api)
    core = client.CoreV1Api(kube_api)

    def status() -> RoutingPolicyStatus:
        body = custom.get_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, POLICY)
        return RoutingPolicyStatus.model_validate(body.get("status") or {})

    def rolled_back() -> RoutingPolicyStatus | None:
        st = status()
        return st if st.phase == Phase.ROLLED_BACK else None

    with routed_system(
        tmp_path,
        kube_api,
        namespace,
        POLICY,
        tiny_classifier,
        {"billing_status": 0.0},
        category=billing_every_third,
    ) as (big, small, start):
        manifest = policy_manifest(
            POLICY,
            big,
            small,
            prometheus.url,
            steps=[50, 100],
            slos=[
                {"tier": t, "signal": "ThumbsDown", "allowedDrop": 0.5, "failMargin": 0.45}
                for t in ("simple", "complex")
            ],
            slices=[
                {"name": "category", "key": "category", "values": ["billing_status", "refunds"]}
            ],
        )
        custom.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, manifest)
        url, _ = start(wait_for)
        prometheus.set_targets([url.removeprefix("http://")])
        st = wait_for(
            rolled_back, timeout=300, message=f"never rolled back; operator log:\n{operator.log()}"
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

    def gate_failed() -> list[Any]:
        evs = core.list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={POLICY}"
        ).items
        return [e for e in evs if e.reason == Reason.GATE_FAILED.value]

    events = wait_for(gate_failed, timeout=30, message="a GateFailed Event")
    assert "tier simple, slice category=billing_status" in events[0].message
