"""The few functions that talk to the Kubernetes API server.

Everything here is I/O and nothing decides: what to write comes from the pure modules
(:mod:`render`, :mod:`rollout`). Blocking calls of the official ``kubernetes`` client;
the async handlers run them in a thread.

* Rendered objects are written with **server-side apply** under the field manager
  ``tierguard-operator`` (``force`` so a field a person edited by hand is taken back:
  the operator owns what it renders).
* Status is written with a full **replace of the status subresource carrying the
  resourceVersion read**, so two writers can never both act on the same state: the
  second gets 409 Conflict (:class:`StatusConflictError`), re-reads and decides again.
  The spec is never written.
* Transient failures (409 on apply, 429, 5xx, connection errors) are retried a few
  times with backoff; other failures raise :class:`KubeError` with the API's message.
"""

from __future__ import annotations

import logging
import os
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from kubernetes.dynamic.exceptions import ResourceNotFoundError

from tierguard.api import constants as c

log = logging.getLogger("tierguard.operator.kube")
T = TypeVar("T")

RETRIES = 4
TRANSIENT = {409, 429, 500, 502, 503, 504}


class KubeError(RuntimeError):
    """An API call failed for a reason retrying will not fix (403, 422, ...)."""


class StatusConflictError(KubeError):
    """The policy changed since it was read: read it again and decide again."""


class NotFoundError(KubeError):
    """The policy is gone."""


def load_api_client(kubeconfig: str | None = None, context: str | None = None) -> k8s.ApiClient:
    """An API client from a kubeconfig file, else in-cluster credentials, else ~/.kube."""
    if kubeconfig:
        return cast(
            k8s.ApiClient,
            k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context
            ),
        )
    try:
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        return k8s.ApiClient()
    except k8s_config.ConfigException:
        return cast(
            k8s.ApiClient,
            k8s_config.new_client_from_config(context=context),  # type: ignore[no-untyped-call]
        )


def _message(exc: ApiException) -> str:
    return f"{exc.status} {exc.reason}: {(exc.body or '')[:500]}"


def with_retries(what: str, call: Callable[[], T], *, retry_conflicts: bool = True) -> T:
    """Run ``call``, retrying transient API failures with exponential backoff."""
    delay = 0.2
    for attempt in range(RETRIES + 1):
        try:
            return call()
        except ApiException as exc:
            transient = exc.status in TRANSIENT and (retry_conflicts or exc.status != 409)
            if not transient or attempt == RETRIES:
                if exc.status == 404:
                    raise NotFoundError(f"{what}: {_message(exc)}") from exc
                if exc.status == 409:
                    raise StatusConflictError(f"{what}: {_message(exc)}") from exc
                raise KubeError(f"{what}: {_message(exc)}") from exc
            log.info("%s: %s (retrying)", what, _message(exc))
        except OSError as exc:  # connection refused/reset, timeouts (urllib3 raises these)
            if attempt == RETRIES:
                raise KubeError(f"{what}: {exc}") from exc
        time.sleep(delay)
        delay = min(delay * 2, 3.0)
    raise AssertionError("unreachable")


class Kube:
    """The operator's API access (one per process)."""

    def __init__(self, api: k8s.ApiClient) -> None:
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self._dynamic: DynamicClient | None = None
        self._lock = threading.Lock()
        self._sm_checked_at = 0.0
        self._sm_available = False

    @property
    def dynamic(self) -> DynamicClient:
        """The discovery-backed client for server-side apply. Its discovery cache goes to
        a file of this process only: the library's default is one shared file in /tmp,
        which concurrent processes (two replicas, tests) corrupt for each other."""
        with self._lock:
            if self._dynamic is None:
                cache = os.path.join(
                    tempfile.gettempdir(), f"tierguard-operator-discovery-{os.getpid()}.json"
                )
                self._dynamic = DynamicClient(self.api, cache_file=cache)  # type: ignore[no-untyped-call]
            return self._dynamic

    # -- policies --------------------------------------------------------------------

    def get_policy(self, namespace: str, name: str) -> dict[str, Any]:
        def call() -> dict[str, Any]:
            out = self.custom.get_namespaced_custom_object(
                c.GROUP, c.VERSION, namespace, c.PLURAL, name
            )
            return cast(dict[str, Any], out)

        return with_retries(f"get {c.KIND} {namespace}/{name}", call)

    def count_policies(self, namespaces: list[str]) -> int:
        """List the RoutingPolicies in ``namespaces`` (all when empty), one page each: the
        readiness check (connected, authorised, the CRD served). Returns how many exist
        (the server's remaining-item count where the page is partial)."""

        def one(namespace: str | None) -> int:
            out: dict[str, Any]
            if namespace is None:
                out = cast(
                    dict[str, Any],
                    self.custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL, limit=1),
                )
            else:
                out = cast(
                    dict[str, Any],
                    self.custom.list_namespaced_custom_object(
                        c.GROUP, c.VERSION, namespace, c.PLURAL, limit=1
                    ),
                )
            remaining = (out.get("metadata") or {}).get("remainingItemCount") or 0
            return len(out.get("items") or []) + int(remaining)

        return sum(one(ns) for ns in namespaces) if namespaces else one(None)

    def replace_status(self, body: dict[str, Any], status: dict[str, Any]) -> dict[str, Any]:
        """Replace ``status`` if the policy is still at ``body``'s resourceVersion."""
        meta = body["metadata"]
        obj = {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "resourceVersion": meta["resourceVersion"],
            },
            "spec": body.get("spec", {}),
            "status": status,
        }

        def call() -> dict[str, Any]:
            out = self.custom.replace_namespaced_custom_object_status(
                c.GROUP, c.VERSION, meta["namespace"], c.PLURAL, meta["name"], obj
            )
            return cast(dict[str, Any], out)

        return with_retries(
            f"write status of {meta['namespace']}/{meta['name']}", call, retry_conflicts=False
        )

    # -- rendered objects ------------------------------------------------------------

    def apply(self, obj: dict[str, Any]) -> None:
        """Server-side apply one rendered object."""
        meta = obj["metadata"]
        what = f"apply {obj['kind']} {meta.get('namespace', '')}/{meta['name']}"

        def call() -> None:
            res = self.dynamic.resources.get(api_version=obj["apiVersion"], kind=obj["kind"])
            self.dynamic.server_side_apply(  # type: ignore[no-untyped-call]
                res,
                body=obj,
                namespace=meta.get("namespace"),
                field_manager=c.FIELD_MANAGER,
                force_conflicts=True,
            )

        with_retries(what, call)

    def service_monitor_available(self, ttl: float = 300.0) -> bool:
        """Whether the ServiceMonitor CRD is served (checked at most every ``ttl`` s)."""
        now = time.monotonic()
        if now - self._sm_checked_at < ttl and self._sm_checked_at:
            return self._sm_available
        try:
            self.dynamic.resources.get(
                api_version="monitoring.coreos.com/v1", kind="ServiceMonitor"
            )
            self._sm_available = True
        except ResourceNotFoundError:
            with self._lock:
                self._dynamic = None  # re-discover next time: the CRD may be installed later
            self._sm_available = False
        self._sm_checked_at = now
        return self._sm_available

    def ensure_secret(self, obj: dict[str, Any], key: str) -> bool:
        """Create ``obj`` with a random value under ``key`` unless it exists (never
        overwritten, never read). True if created."""
        body = {**obj, "stringData": {key: secrets.token_urlsafe(48)}}
        meta = obj["metadata"]
        try:
            with_retries(
                f"create Secret {meta['namespace']}/{meta['name']}",
                lambda: self.core.create_namespaced_secret(meta["namespace"], body),  # type: ignore[arg-type]
                retry_conflicts=False,
            )
            return True
        except StatusConflictError:  # 409 AlreadyExists
            return False

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        import base64

        sec = with_retries(
            f"read Secret {namespace}/{name}",
            lambda: self.core.read_namespaced_secret(name, namespace),
        )
        data = sec.data or {}
        if key not in data:
            raise KubeError(f"Secret {namespace}/{name} has no key {key!r}")
        return base64.b64decode(data[key]).decode().strip()

    # -- events ----------------------------------------------------------------------

    def emit_event(self, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """A core/v1 Event on the policy (``kubectl describe`` shows it)."""
        meta = body["metadata"]
        now = datetime.now(UTC)
        event = k8s.CoreV1Event(
            metadata=k8s.V1ObjectMeta(
                name=f"{meta['name']}.{uuid.uuid4().hex[:16]}", namespace=meta["namespace"]
            ),
            involved_object=k8s.V1ObjectReference(
                api_version=c.API_VERSION,
                kind=c.KIND,
                name=meta["name"],
                namespace=meta["namespace"],
                uid=meta.get("uid"),
                resource_version=meta.get("resourceVersion"),
            ),
            reason=reason,
            message=message[:1024],
            type=type_,
            source=k8s.V1EventSource(component=c.FIELD_MANAGER),
            reporting_component=c.FIELD_MANAGER,
            reporting_instance=c.FIELD_MANAGER,
            first_timestamp=now,
            last_timestamp=now,
            count=1,
        )
        with_retries(
            f"create Event for {meta['namespace']}/{meta['name']}",
            lambda: self.core.create_namespaced_event(meta["namespace"], event),
        )
