"""The disruption budget of a policy scaled down to one router is deleted: the one this
process applied, or after a restart the one it finds; never another owner's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from rolloutsim import make_spec

from tierguard.api.enums import Phase
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.applier import Applier, with_ready
from tierguard.operator.kube import Kube, NotFoundError
from tierguard.operator.rendermeta import RenderedMetadata, object_name

BODY = {"metadata": {"name": "shop", "namespace": "team-a", "uid": "uid-1"}}
PDB = ("PodDisruptionBudget", object_name("shop"))


class _Cluster:
    """The calls the Applier makes, over a dict of live objects by (kind, name)."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str], dict[str, Any]] = {}
        self.deleted: list[tuple[str, str, str]] = []
        self.reads: list[tuple[str, str]] = []

    def ensure_secret(self, obj: dict[str, Any], key: str) -> bool:
        return True

    def service_monitor_available(self) -> bool:
        return False

    def _put(self, obj: dict[str, Any]) -> None:
        key = (obj["kind"], obj["metadata"]["name"])
        self.live[key] = {**obj, "metadata": {**obj["metadata"], "uid": f"u-{key[0]}"}}

    def create(self, obj: dict[str, Any]) -> bool:
        self._put(obj)
        return True

    def apply(self, obj: dict[str, Any]) -> bool:
        self._put(obj)
        return True

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        self.reads.append((kind, name))
        if (kind, name) not in self.live:
            raise NotFoundError(name)
        return self.live[(kind, name)]

    def delete_object(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        assert (api_version, namespace) == ("policy/v1", "team-a")
        self.deleted.append((kind, name, uid))
        del self.live[(kind, name)]

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        return "value"


def _reconcile(applier: Applier, replicas: int, status: RoutingPolicyStatus) -> None:
    spec = make_spec()
    spec.router.replicas = replicas
    error, _ = applier.apply_rendered(BODY, spec, status, cc.ClassifierLookup(), jpc.BUILTIN)
    assert error is None


APPLIED = RoutingPolicyStatus(phase=Phase.PROGRESSING, revision="r", canary_weight=5)


def _ready() -> RoutingPolicyStatus:
    """A status with Ready: objects applied before (by an earlier process)."""
    status = with_ready(APPLIED, None, datetime.now(UTC), 1)
    assert status is not None
    return status


def test_scaling_down_to_one_router_deletes_the_budget_once() -> None:
    cluster = _Cluster()
    applier = Applier(cast(Kube, cluster), RenderedMetadata())
    _reconcile(applier, 2, RoutingPolicyStatus())
    assert PDB in cluster.live
    _reconcile(applier, 2, APPLIED)
    assert not cluster.deleted
    _reconcile(applier, 1, APPLIED)
    assert cluster.deleted == [(*PDB, "u-PodDisruptionBudget")]
    reads = len(cluster.reads)
    _reconcile(applier, 1, APPLIED)
    assert len(cluster.deleted) == 1 and len(cluster.reads) == reads, "forgotten once deleted"
    _reconcile(applier, 3, APPLIED)
    assert PDB in cluster.live, "back to more routers: a budget again"


def test_a_new_single_router_policy_gets_no_budget_and_no_reads() -> None:
    cluster = _Cluster()
    applier = Applier(cast(Kube, cluster), RenderedMetadata())
    _reconcile(applier, 1, RoutingPolicyStatus())
    assert PDB not in cluster.live and not cluster.reads and not cluster.deleted


def test_after_a_restart_the_budget_an_older_operator_left_is_deleted() -> None:
    cluster = _Cluster()
    before = Applier(cast(Kube, cluster), RenderedMetadata())
    _reconcile(before, 2, RoutingPolicyStatus())
    cluster.live[PDB]["metadata"]["ownerReferences"] = [{"uid": "uid-1"}]
    after = Applier(cast(Kube, cluster), RenderedMetadata())  # a restart: nothing known
    _reconcile(after, 1, _ready())
    assert cluster.deleted == [(*PDB, "u-PodDisruptionBudget")]


def test_a_budget_owned_by_someone_else_is_left_alone() -> None:
    cluster = _Cluster()
    cluster.live[PDB] = {
        "kind": "PodDisruptionBudget",
        "metadata": {"name": PDB[1], "uid": "theirs", "ownerReferences": [{"uid": "other"}]},
    }
    applier = Applier(cast(Kube, cluster), RenderedMetadata())
    _reconcile(applier, 1, _ready())
    assert not cluster.deleted and PDB in cluster.live
