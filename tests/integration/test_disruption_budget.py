"""A policy's PodDisruptionBudget follows its router count, on the real API server and
with the operator's least-privilege identity: none for one router (``maxUnavailable: 1``
would let its only pod go anyway), one when scaled to two, deleted again when scaled
back to one -- also by a restarted operator that never applied it."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import pytest

from operatorkit import install_crd, operator_identity, policy_manifest
from tierguard.api import constants as c
from tierguard.api.enums import Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.applier import Applier, with_ready
from tierguard.operator.kube import Kube, NotFoundError, load_api_client
from tierguard.operator.rendermeta import RenderedMetadata, object_name

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _budget(kube: Kube, namespace: str) -> dict[str, Any] | None:
    try:
        out: dict[str, Any] = kube.read_object(
            "policy/v1", "PodDisruptionBudget", namespace, object_name("p")
        )
        return out
    except NotFoundError:
        return None


def test_the_budget_follows_the_router_count(
    control_plane: ControlPlane, kube_api: ApiClient, namespace: str
) -> None:
    from kubernetes import client

    install_crd(control_plane)
    manifest = policy_manifest("p", "http://big.invalid", "http://small.invalid", "http://p")
    assert manifest["spec"]["router"]["replicas"] == 1
    body = cast(
        dict[str, Any],
        client.CustomObjectsApi(kube_api).create_namespaced_custom_object(
            c.GROUP, c.VERSION, namespace, c.PLURAL, manifest
        ),
    )
    spec = RoutingPolicySpec.model_validate(body["spec"])
    with operator_identity(control_plane, kube_api, namespace) as kubeconfig:
        kube = Kube(load_api_client(str(Path(kubeconfig))))

        def reconcile(applier: Applier, replicas: int, status: RoutingPolicyStatus) -> None:
            spec.router.replicas = replicas
            error, _ = applier.apply_rendered(
                body, spec, status, cc.ClassifierLookup(), jpc.BUILTIN
            )
            assert error is None, error

        applier = Applier(kube, RenderedMetadata())
        reconcile(applier, 1, RoutingPolicyStatus())
        assert _budget(kube, namespace) is None, "one router: no budget"
        ready = with_ready(
            RoutingPolicyStatus(phase=Phase.PROGRESSING, revision="r"), None, datetime.now(UTC), 1
        )
        assert ready is not None
        reconcile(applier, 2, ready)
        made = _budget(kube, namespace)
        assert made is not None and made["spec"]["maxUnavailable"] == 1
        assert made["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
        reconcile(applier, 1, ready)
        assert _budget(kube, namespace) is None, "back to one router: deleted"

        # A restarted operator (it applied nothing itself) finds one an older operator
        # left, and deletes it.
        reconcile(applier, 2, ready)
        assert _budget(kube, namespace) is not None
        restarted = Applier(kube, RenderedMetadata())
        reconcile(restarted, 1, ready)
        assert _budget(kube, namespace) is None
