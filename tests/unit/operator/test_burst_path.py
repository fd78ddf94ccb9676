"""The pieces of the new-policy path that a burst of policies depends on."""

from __future__ import annotations

from datetime import UTC, datetime

from kubernetes import client

from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator.applier import with_ready
from tierguard.operator.controller import is_fresh
from tierguard.operator.kube import Kube


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
