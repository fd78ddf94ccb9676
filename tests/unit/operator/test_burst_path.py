"""The pieces of the new-policy path that a burst of policies depends on."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import kopf
from kubernetes import client

from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator.applier import with_ready
from tierguard.operator.controller import Controller, ControllerSettings
from tierguard.operator.freshness import (
    KnownVersions,
    decision_copy,
    drop_managed_fields,
    watch_snapshot,
)
from tierguard.operator.kube import Kube
from tierguard.operator.reconcilestatus import is_fresh


def test_the_connection_pool_holds_a_connection_per_worker() -> None:
    api = client.ApiClient(client.Configuration(host="https://127.0.0.1:6443"))
    default = api.rest_client.pool_manager.connection_pool_kw["maxsize"]
    Kube(api, connections=default + 30)
    pool = api.rest_client.pool_manager.connection_from_url("https://127.0.0.1:6443/")
    assert pool.pool is not None and pool.pool.maxsize == default + 30


def test_only_a_never_written_status_takes_the_one_write_path() -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    assert is_fresh(RoutingPolicyStatus())
    assert is_fresh(RoutingPolicyStatus.model_validate({}))
    assert not is_fresh(RoutingPolicyStatus(revision="abc"))
    ready = with_ready(RoutingPolicyStatus(), None, now, 1)
    assert ready is not None and not is_fresh(ready)
    assert [c.status for c in ready.conditions if c.type == "Ready"] == ["True"]
    assert with_ready(ready, None, now, 1) is None, "Ready already says so: no write"
    failed = with_ready(ready, "403 Forbidden", now, 1)
    assert failed is not None
    assert [c.message for c in failed.conditions if c.type == "Ready"] == ["403 Forbidden"]


def _policy(rv: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "p", "resourceVersion": rv}}


class _CountingKube:
    """Just the two calls :meth:`Controller._current` and ``_write_status`` make."""

    def __init__(self) -> None:
        self.live = _policy("5")
        self.gets = 0

    def get_policy(self, namespace: str, name: str) -> dict[str, Any]:
        self.gets += 1
        return self.live

    def replace_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        self.live = _policy(str(int(self.live["metadata"]["resourceVersion"]) + 1))
        return self.live


def test_the_watch_copy_stands_in_for_a_get_only_when_it_is_current() -> None:
    kube = _CountingKube()
    ctl = Controller(kube, ControllerSettings(query_round_seconds=0))  # type: ignore[arg-type]
    # A process that has not read or written the policy: the watch's copy is as good.
    assert ctl._current("ns", "p", _policy("5")) == _policy("5") and kube.gets == 0
    written = ctl._write_status(_policy("5"), {})
    assert written["metadata"]["resourceVersion"] == "6"
    # The watch has not delivered our own write yet: its copy is older, so read.
    assert ctl._current("ns", "p", _policy("5"))["metadata"]["resourceVersion"] == "6"
    assert kube.gets == 1
    # Once it has, no read.
    assert ctl._current("ns", "p", _policy("6")) == _policy("6") and kube.gets == 1
    # Someone else wrote (the watch shows a version we never saw): read.
    kube.live = _policy("9")
    assert ctl._current("ns", "p", _policy("9")) == _policy("9") and kube.gets == 2
    assert ctl._current("ns", "p", None) == _policy("9") and kube.gets == 3
    # A deleted and re-created policy starts afresh.
    ctl.forget("ns", "p")
    assert ctl._current("ns", "p", _policy("1")) == _policy("1") and kube.gets == 3


def test_known_versions() -> None:
    known = KnownVersions()
    assert not known.usable(("ns", "p"), None)
    assert known.usable(("ns", "p"), _policy("3"))
    known.note(("ns", "p"), _policy("4"))
    assert not known.usable(("ns", "p"), _policy("3"))
    assert known.usable(("ns", "p"), _policy("4"))
    known.note(("ns", "p"), {"metadata": {}})  # a version we cannot compare: always read
    assert not known.usable(("ns", "p"), {"metadata": {}})
    known.forget(("ns", "p"))
    assert known.usable(("ns", "p"), _policy("3"))


def test_the_rollout_daemon_puts_no_finalizer_on_policies() -> None:
    """kopf's daemons ask for a finalizer by default: one patch per new policy, and a
    deletion that waits for the operator. The handler module turns it off."""
    import kopf

    from tierguard.operator import handlers

    daemons = [
        h
        for h in kopf.get_default_registry()._spawning.get_all_handlers()
        if h.fn is handlers.rollout_loop
    ]
    assert len(daemons) == 1
    assert daemons[0].requires_finalizer is False


def _watched() -> dict[str, Any]:
    return {
        "apiVersion": "tierguard.io/v1alpha1",
        "metadata": {
            "name": "p",
            "namespace": "ns",
            "resourceVersion": "7",
            "managedFields": [{"manager": "tierguard", "fieldsV1": {"f:status": {}}}],
        },
        "spec": {"tiers": [{"name": "simple"}]},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]},
    }


def test_kopfs_kept_copy_of_a_policy_loses_managed_fields_and_nothing_else() -> None:
    """The poke handler strips kopf's own copy (the body its daemon is handed) through
    the installed kopf's Body: if kopf stops exposing its source dict, this fails."""
    raw = _watched()
    body = kopf.Body(raw)  # type: ignore[arg-type]
    drop_managed_fields(getattr(body, "_src", None))
    assert "managedFields" not in body["metadata"] and "managedFields" not in raw["metadata"]
    want = _watched()
    del want["metadata"]["managedFields"]
    assert dict(body) == want, "only managedFields went"
    drop_managed_fields(None)  # a body without a source dict: nothing to do
    drop_managed_fields({"metadata": None})


def test_the_decision_copy_is_private_and_lean() -> None:
    raw = _watched()
    body = kopf.Body(raw)  # type: ignore[arg-type]
    snapshot = watch_snapshot(body)
    assert snapshot["spec"] is raw["spec"], "shared until the worker copies it"
    seen = decision_copy(snapshot)
    assert "managedFields" not in seen["metadata"]
    assert "managedFields" in raw["metadata"], "the watch's copy is not touched"
    assert seen["metadata"]["resourceVersion"] == "7" and seen["spec"] == raw["spec"]
    seen["status"]["conditions"][0]["status"] = "False"
    assert body["status"]["conditions"][0]["status"] == "True", "a deep copy"
    assert decision_copy(watch_snapshot({"spec": {}})) == {"spec": {}}


def test_kopf_keeps_a_memory_for_each_policy_but_none_for_owned_objects() -> None:
    """The handler module makes kopf's per-object memories of the owned kinds (every
    ConfigMap, Deployment, ... of the cluster) ephemeral; a policy's memory (its daemon,
    its wake-up event) stays, and is the same on every event."""
    from kopf._core.reactor.inventory import ResourceMemories

    from tierguard.api import constants as c
    from tierguard.operator import handlers

    def obj(api_version: str, kind: str, uid: str) -> dict[str, Any]:
        return {
            "apiVersion": api_version,
            "kind": kind,
            "metadata": {"uid": uid, "name": uid, "namespace": "ns"},
        }

    async def recall_all() -> None:
        memories = ResourceMemories()
        for i, (api_version, kind) in enumerate(sorted(handlers.OWNED_KINDS)):
            await memories.recall(obj(api_version, kind, f"o{i}"), memobase=kopf.Memo())  # type: ignore[arg-type]
        first = await memories.recall(obj(c.API_VERSION, c.KIND, "p"), memobase=kopf.Memo())  # type: ignore[arg-type]
        again = await memories.recall(raw_body=obj(c.API_VERSION, c.KIND, "p"))  # type: ignore[arg-type]
        assert again is first
        assert len(memories._items) == 1, "only the policy is remembered"

    assert len(handlers.OWNED_KINDS) == len(handlers.OWNED)
    asyncio.run(recall_all())
