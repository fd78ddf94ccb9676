"""API failures map onto errors the caller can back off on; no call sleeps in a thread."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kubernetes.client.exceptions import ApiException

from tierguard.operator.backoff import MAX_DELAY, Backoff
from tierguard.operator.kube import (
    KubeError,
    NotFoundError,
    StatusConflictError,
    TransientError,
    resource_for,
    with_retries,
)


def _fail(status: int, headers: dict[str, str] | None = None) -> ApiException:
    exc = ApiException(status=status, reason="x")
    exc.headers = headers or {}
    exc.body = '{"message": "m"}'
    return exc


def _always(exc: BaseException) -> tuple[Callable[[], None], list[int]]:
    calls: list[int] = []

    def call() -> None:
        calls.append(1)
        raise exc

    return call, calls


def test_5xx_and_429_raise_at_once_with_retry_after() -> None:
    call, calls = _always(_fail(429, {"Retry-After": "7"}))
    start = time.monotonic()
    with pytest.raises(TransientError) as err:
        with_retries("get", call)
    assert err.value.retry_after == 7.0 and len(calls) == 1
    call, calls = _always(_fail(503))
    with pytest.raises(TransientError) as err:
        with_retries("get", call)
    assert err.value.retry_after is None and len(calls) == 1
    assert time.monotonic() - start < 0.5, "no sleeping inside the worker thread"


def test_conflicts_dropped_connections_and_hard_errors() -> None:
    call, calls = _always(_fail(409))
    with pytest.raises(StatusConflictError):
        with_retries("apply", call)
    assert len(calls) == 2, "a 409 on apply is retried once at once"
    call, calls = _always(_fail(409))
    with pytest.raises(StatusConflictError):
        with_retries("status", call, retry_conflicts=False)
    assert len(calls) == 1
    call, calls = _always(ConnectionResetError("reset"))
    with pytest.raises(TransientError):
        with_retries("get", call)
    assert len(calls) == 2
    call, _ = _always(_fail(404))
    with pytest.raises(NotFoundError):
        with_retries("get", call)
    call, _ = _always(_fail(422))
    with pytest.raises(KubeError) as err:
        with_retries("apply", call)
    assert not isinstance(err.value, TransientError) and "422" in str(err.value)


def test_backoff_doubles_to_a_cap_honours_retry_after_and_resets() -> None:
    b = Backoff()
    delays = [b.failed() for _ in range(10)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0] and max(delays) == MAX_DELAY
    assert b.failed(retry_after=120.0) == 120.0
    b.succeeded()
    assert b.failed() == 1.0


def test_every_rendered_kind_has_a_path_without_discovery() -> None:
    from rolloutsim import make_spec

    from tierguard.api.status import RoutingPolicyStatus
    from tierguard.operator import render, rendermeta

    ref = rendermeta.PolicyRef("shop", "ns", "u")
    objs = render.render_all(
        ref, make_spec(), RoutingPolicyStatus(), service_monitor_available=True
    )
    paths = {o["kind"]: resource_for(o).path("ns", o["metadata"]["name"]) for o in objs}
    assert paths["Deployment"] == "/apis/apps/v1/namespaces/ns/deployments/shop-router"
    assert paths["ConfigMap"] == "/api/v1/namespaces/ns/configmaps/shop-router"
    assert paths["ServiceMonitor"].startswith("/apis/monitoring.coreos.com/v1/namespaces/ns/")
    with pytest.raises(KubeError):
        resource_for({"apiVersion": "v1", "kind": "Pod"})
