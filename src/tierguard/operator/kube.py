"""The few functions that talk to the Kubernetes API server.

Everything here is I/O and nothing decides: what to write comes from the pure modules
(:mod:`render`, :mod:`rollout`). Blocking calls of the official ``kubernetes`` client;
the async handlers run them in the controller's bounded thread pool.

* Rendered objects are written with **server-side apply** under the field manager
  ``tierguard-operator`` (``force`` so a field a person edited by hand is taken back:
  the operator owns what it renders). A new policy's objects are created with a plain
  POST instead (cheaper for the API server); the first apply of such an object takes
  over the ``Update`` entry the POST left (:mod:`managedfields`). The kinds it renders
  are fixed (:mod:`kuberesources`), so their paths
  come from a table (:data:`RESOURCES`), not from discovery: no discovery cache file,
  and nothing to re-discover while other threads apply.
* Status is written with a full **replace of the status subresource carrying the
  resourceVersion read**, so two writers can never both act on the same state: the
  second gets 409 Conflict (:class:`StatusConflictError`), re-reads and decides again.
  The spec is never written.
* **No call sleeps in its thread.** A dropped keep-alive connection, or a 409 on apply,
  is retried once at once; 429 (priority and fairness, with its ``Retry-After``) and
  5xx raise :class:`TransientError`, and the caller backs off *asynchronously*
  (:mod:`tierguard.operator.backoff`), so one failing policy never holds a worker that
  the others need. Other failures raise :class:`KubeError` with the API's message.
"""

from __future__ import annotations

import base64
import functools
import logging
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from tierguard.api import constants as c
from tierguard.operator import managedfields
from tierguard.operator.kuberesources import (
    RESOURCES,
    SERVICE_MONITOR_GROUP_VERSION,
    Resource,
    UnknownKindError,
)
from tierguard.operator.kuberesources import resource_for as _resource_for

log = logging.getLogger("tierguard.operator.kube")
#: Tries of the managedFields fold of :meth:`Kube.apply` when the object keeps changing.
ADOPTION_ATTEMPTS = 4
T = TypeVar("T")

#: Statuses retrying may fix. 409 only where the caller allows it (apply), once, at once.
TRANSIENT = {429, 500, 502, 503, 504}
#: Seconds (connect, read) for one raw call: a hung API server must not hold a worker.
REQUEST_TIMEOUT = (10.0, 60.0)


class KubeError(RuntimeError):
    """An API call failed for a reason retrying will not fix (403, 422, ...)."""


class TransientError(KubeError):
    """The API server was busy (429) or failing (5xx, connection trouble): try again
    later. ``retry_after`` is the server's ``Retry-After`` in seconds, if it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StatusConflictError(KubeError):
    """The policy changed since it was read: read it again and decide again."""


class NotFoundError(KubeError):
    """The object is gone."""


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


def retry_after_seconds(exc: ApiException) -> float | None:
    """The ``Retry-After`` header of a response in seconds (integer form), if any."""
    headers = getattr(exc, "headers", None) or {}
    for key, value in dict(headers).items():
        if str(key).lower() == "retry-after":
            text = str(value).strip()
            return float(text) if text.isdigit() else None
    return None


def with_retries(what: str, call: Callable[[], T], *, retry_conflicts: bool = True) -> T:
    """Run ``call``; map API failures onto this module's errors. Never sleeps: a dropped
    connection (or a 409 where ``retry_conflicts``) is retried once at once, everything
    transient else is the caller's to retry later (:class:`TransientError`)."""
    for attempt in range(2):
        try:
            return call()
        except ApiException as exc:
            if exc.status == 409 and retry_conflicts and attempt == 0:
                continue
            if exc.status == 404:
                raise NotFoundError(f"{what}: {_message(exc)}") from exc
            if exc.status == 409:
                raise StatusConflictError(f"{what}: {_message(exc)}") from exc
            if exc.status in TRANSIENT:
                raise TransientError(f"{what}: {_message(exc)}", retry_after_seconds(exc)) from exc
            raise KubeError(f"{what}: {_message(exc)}") from exc
        except (OSError, urllib3.exceptions.HTTPError) as exc:  # refused, reset, timeouts
            if attempt == 0:
                continue
            raise TransientError(f"{what}: {exc}") from exc
    raise AssertionError("unreachable")


def resource_for(obj: dict[str, Any]) -> Resource:
    try:
        return _resource_for(obj)
    except UnknownKindError as exc:
        raise KubeError(str(exc.args[0])) from None


def size_connection_pool(api: k8s.ApiClient, connections: int) -> None:
    """Keep up to ``connections`` keep-alive connections to the API server. The client's
    default (5 per CPU) is below the reconcile threads on small nodes: every request
    beyond it would open (and then drop) a new TLS connection, which costs the API
    server and the operator more CPU than the request itself."""
    pools = api.rest_client.pool_manager
    pools.connection_pool_kw["maxsize"] = max(connections, 1)
    pools.clear()  # pools made before keep their old size


class Kube:
    """The operator's API access (one per process; safe to use from many threads)."""

    def __init__(self, api: k8s.ApiClient, connections: int | None = None) -> None:
        if connections is not None:
            size_connection_pool(api, connections)
        self.api = api
        self.core = k8s.CoreV1Api(api)
        self.custom = k8s.CustomObjectsApi(api)
        self._lock = threading.Lock()
        self._sm_checked_at = 0.0
        self._sm_available = False

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: list[tuple[str, str]] | None = None,
        content_type: str = "application/json",
    ) -> Any:
        """One raw REST call with the client's credentials; the decoded JSON back."""
        request = self.api.param_serialize(
            method,
            path,
            query_params=query or [],
            header_params={"Accept": "application/json", "Content-Type": content_type},
            body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*request, _request_timeout=REQUEST_TIMEOUT)
        response.read()  # type: ignore[no-untyped-call]
        return self.api.response_deserialize(response, {"2XX": "object"}).data

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

    def create(self, obj: dict[str, Any]) -> bool:
        """Create a rendered object with a plain POST; False if it exists (409). Only for
        objects this process expects not to exist (a new policy's first apply): what a
        POST leaves in ``managedFields`` is taken over by the next :meth:`apply`."""
        meta = obj["metadata"]
        path = resource_for(obj).path(meta["namespace"])
        try:
            with_retries(
                f"create {obj['kind']} {meta['namespace']}/{meta['name']}",
                lambda: self._call(
                    "POST", path, body=obj, query=[("fieldManager", c.FIELD_MANAGER)]
                ),
                retry_conflicts=False,
            )
            return True
        except StatusConflictError:  # 409 AlreadyExists
            return False

    def apply(self, obj: dict[str, Any]) -> bool:
        """Server-side apply one rendered object. If the object still carries the
        ``Update`` entry of a create by POST (:meth:`create`), fold it into the apply's
        entry and apply again, so that fields no longer rendered are removed
        (:mod:`tierguard.operator.managedfields`): once per object. The fold is guarded
        by the resourceVersion; a Deployment's status is written by the controller
        manager right after every change, so a conflict is read again and retried, up to
        :data:`ADOPTION_ATTEMPTS` tries. True when done; False when the object kept
        changing: the render is applied, but a field it dropped may still be there (held
        by the create's entry) until the object is applied again."""
        live = self._apply(obj)
        meta = obj["metadata"]
        for attempt in range(ADOPTION_ATTEMPTS):
            patch = managedfields.adoption_patch(live or {}, c.FIELD_MANAGER)
            if patch is None:
                return True
            try:
                self._take_over(obj, patch)
            except StatusConflictError:  # written meanwhile: read it again
                if attempt + 1 == ADOPTION_ATTEMPTS:
                    log.warning(
                        "%s %s/%s: fields of its create not taken over (kept changing); "
                        "it is applied again at the next reconcile",
                        obj["kind"],
                        meta["namespace"],
                        meta["name"],
                    )
                    return False
                live = self.read_object(
                    obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]
                )
                continue
            self._apply(obj)
            return True
        raise AssertionError("unreachable")

    def _take_over(self, obj: dict[str, Any], patch: dict[str, Any]) -> None:
        """The fold's merge patch of ``managedFields``; ``patch`` carries the
        resourceVersion of the read it was made from, so this raises
        :class:`StatusConflictError` if the object changed since. A method of its own
        only as a seam: tests make another writer change the object between that read
        and this write (tests/integration/test_fast_create.py), the retry path that a
        race with the controller manager reaches only by chance."""
        meta = obj["metadata"]
        with_retries(
            f"take over the fields of {obj['kind']} {meta['namespace']}/{meta['name']}",
            functools.partial(
                self._call,
                "PATCH",
                resource_for(obj).path(meta["namespace"], meta["name"]),
                body=patch,
                content_type="application/merge-patch+json",
            ),
            retry_conflicts=False,
        )

    def _apply(self, obj: dict[str, Any]) -> Any:
        meta = obj["metadata"]
        res = resource_for(obj)
        what = f"apply {obj['kind']} {meta['namespace']}/{meta['name']}"
        path = res.path(meta["namespace"], meta["name"])
        query = [("fieldManager", c.FIELD_MANAGER), ("force", "true")]
        return with_retries(
            what,
            lambda: self._call(
                "PATCH",
                path,
                body=obj,
                query=query,
                content_type="application/apply-patch+yaml",
            ),
        )

    def list_configmaps(self, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        """The ConfigMaps matching ``label_selector`` (metadata and all: the frozen copies
        are small enough, and pruning needs their annotations and owners)."""
        path = RESOURCES[("v1", "ConfigMap")].path(namespace)
        out = with_retries(
            f"list ConfigMaps in {namespace} ({label_selector})",
            lambda: self._call("GET", path, query=[("labelSelector", label_selector)]),
        )
        return list((out or {}).get("items") or [])

    def delete_object(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        """Delete a rendered object if it is still the one with ``uid`` (409 otherwise:
        a namesake made since is not this caller's to delete)."""
        path = resource_for({"apiVersion": api_version, "kind": kind}).path(namespace, name)
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
        with_retries(
            f"delete {kind} {namespace}/{name}",
            lambda: self._call("DELETE", path, body=body),
            retry_conflicts=False,
        )

    def read_object(self, api_version: str, kind: str, namespace: str, name: str) -> Any:
        """The live object (``NotFoundError`` if there is none)."""
        res = resource_for({"apiVersion": api_version, "kind": kind})
        return with_retries(
            f"get {kind} {namespace}/{name}", lambda: self._call("GET", res.path(namespace, name))
        )

    def service_monitor_available(self, ttl: float = 300.0) -> bool:
        """Whether the ServiceMonitor CRD is served (asked at most every ``ttl`` s, by a
        plain discovery GET: nothing is cached on disk or shared between threads but
        these two fields)."""
        now = time.monotonic()
        with self._lock:
            if self._sm_checked_at and now - self._sm_checked_at < ttl:
                return self._sm_available
        try:
            doc = with_retries(
                "discover ServiceMonitor",
                lambda: self._call("GET", f"/apis/{SERVICE_MONITOR_GROUP_VERSION}"),
            )
            kinds = {r.get("kind") for r in (doc or {}).get("resources", [])}
            available = "ServiceMonitor" in kinds
        except NotFoundError:
            available = False
        except TransientError:
            return self._sm_available  # ask again next time
        with self._lock:
            self._sm_available = available
            self._sm_checked_at = now
        return available

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
