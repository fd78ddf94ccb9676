"""The kopf handlers: the only module with ``@kopf.*`` decorators.

Thin on purpose (as in crate-operator): each handler checks, delegates to
:class:`~tierguard.operator.controller.Controller`, and maps failures to kopf's error
taxonomy. One daemon per RoutingPolicy runs its reconcile loop, so a policy is never
reconciled by two tasks of one process at once (and never holds more than one worker
thread); a watch-event handler wakes it early, so a spec change or an ``abort``
annotation acts within a second instead of at the next tick.

Reconciles run in the controller's own bounded thread pool (``--workers``), never
sleep there, and a failing policy waits out its backoff on the event loop
(:mod:`tierguard.operator.backoff`), so persistent API errors on some policies leave
the others' cadence alone.

Owned objects (ConfigMaps, Deployments, ... labelled as the operator's) are watched too:
an event whose object no longer holds what was rendered (a hand edit, a deletion) wakes
its policy to re-apply it. Nothing is re-applied on a timer. Those watches carry a
**server-side** label selector (:data:`OWNED_SELECTOR`, kopf's
``settings.watching.label_selectors``): in a cluster with thousands of other ConfigMaps
or Deployments the API server sends the operator only its own, instead of every object
of those kinds for kopf to parse and drop. An object whose label is edited away leaves
the filtered watch as a DELETED event, which counts as drift (it is re-applied, label and
all) -- a client-side filter would have dropped that event unseen.

Daemons stop when kopf peering pauses this replica, so of two replicas only one acts (and
the status write's resourceVersion check makes even a brief overlap harmless).

No finalizer: kopf puts one on every object a daemon runs for (a patch per new policy,
and a deletion that waits for the operator), but nothing here needs to run before a
policy is gone -- the garbage collector deletes what it owns. The daemon stops when the
watch reports the policy deleted (:func:`poke`), or at its next reconcile, which finds it
gone; an apply racing the deletion only creates objects whose owner no longer exists,
which the garbage collector deletes as well.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import kopf
from kopf._core.reactor.inventory import ResourceMemories

from tierguard.api import constants as c
from tierguard.operator.backoff import Backoff
from tierguard.operator.controller import Controller
from tierguard.operator.freshness import decision_copy, drop_managed_fields, watch_snapshot
from tierguard.operator.kube import KubeError, TransientError
from tierguard.operator.kuberesources import RESOURCES
from tierguard.operator.readiness import Readiness, watch_api
from tierguard.operator.readiness import serve as serve_readiness

log = logging.getLogger("tierguard.operator.handlers")
T = TypeVar("T")

#: Set by :mod:`tierguard.operator.cli` before kopf starts.
CONTROLLER: Controller | None = None
#: Readiness endpoint (``--readiness``) and the watched namespaces (empty: all), set by
#: the CLI; None: no readiness endpoint.
READINESS_ENDPOINT: str | None = None
WATCHED_NAMESPACES: list[str] = []
#: Seconds a replica's kopf peering record stays valid (set by the CLI).
PEERING_LIFETIME = 60
WAKE_KEY = "tierguard_wake"
GONE_KEY = "tierguard_gone"
#: (namespace, name) -> the wake-up event of that policy's daemon.
WAKERS: dict[tuple[str, str], asyncio.Event] = {}
#: The kinds the operator renders and watches for drift: (group, version, plural).
OWNED = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io", "v1", "roles"),
    ("rbac.authorization.k8s.io", "v1", "rolebindings"),
)
#: The server-side label selector of the owned kinds' watches and initial lists.
OWNED_SELECTOR = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
#: Objects per page of kopf's initial lists (policies and owned kinds): a restart in a
#: big cluster reads pages, not one response holding every object at once.
LIST_CHUNK = 500
#: The same kinds as (apiVersion, kind), as their watch events carry them (from the
#: operator's table of the kinds it renders, so the two cannot drift apart).
OWNED_KINDS = frozenset(
    key
    for key, res in RESOURCES.items()
    if (res.group_version, res.plural) in {(f"{g}/{v}" if g else v, p) for g, v, p in OWNED}
)


class _Pool:
    """The reconcile threads, with a count of reconciles waiting for one."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self.waiting = 0

    def _get(self, workers: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(workers, thread_name_prefix="reconcile")
            return self._executor

    async def run(self, controller: Controller, fn: Callable[..., T], *args: Any) -> T:
        executor = self._get(max(1, controller.settings.workers))
        metrics = controller.metrics

        def started() -> T:
            with self._lock:
                self.waiting -= 1
                if metrics is not None:
                    metrics.backlog.set(self.waiting)
            return fn(*args)

        with self._lock:
            self.waiting += 1
            if metrics is not None:
                metrics.backlog.set(self.waiting)
        return await asyncio.get_running_loop().run_in_executor(executor, started)


POOL = _Pool()


def _controller() -> Controller:
    if CONTROLLER is None:
        raise kopf.PermanentError(
            "the operator was started without a controller (use `tierguard operator`)"
        )
    return CONTROLLER


def _wake(memo: Any) -> asyncio.Event:
    ev = memo.get(WAKE_KEY)
    if ev is None:
        ev = asyncio.Event()
        memo[WAKE_KEY] = ev
    return ev  # type: ignore[no-any-return]


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.watching.chunk_size = LIST_CHUNK
    for group, version, plural in OWNED:
        settings.watching.label_selectors[group, version, plural] = OWNED_SELECTOR
    # A standby replica takes over when the active one's record is this old: the
    # takeover bound after a crash (docs/runbook.md, "Two replicas").
    settings.peering.lifetime = PEERING_LIFETIME
    if READINESS_ENDPOINT and CONTROLLER is not None:
        # Globs (kopf allows them) cannot be listed; the cluster-wide list is then the check.
        scope = (
            []
            if any(ch in ns for ns in WATCHED_NAMESPACES for ch in "*?[!")
            else WATCHED_NAMESPACES
        )
        kube = CONTROLLER.kube
        readiness = Readiness()
        memo["tierguard_readiness_runner"] = await serve_readiness(READINESS_ENDPOINT, readiness)
        memo["tierguard_readiness_task"] = asyncio.create_task(
            watch_api(readiness, lambda: kube.count_policies(scope))
        )


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """kopf uses exactly the credentials of our own API client (``--kubeconfig`` or
    in-cluster), so its watches and our writes run under the same identity."""
    if CONTROLLER is None:
        return kopf.login_via_client(**kwargs)
    cfg = CONTROLLER.kube.api.configuration
    if cfg.refresh_api_key_hook is not None:
        cfg.refresh_api_key_hook(cfg)  # re-read a rotated token (kopf re-logs in on 401)
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = auth.removeprefix("Bearer").strip() if auth else None
    return kopf.ConnectionInfo(
        server=cfg.host,
        ca_path=cfg.ssl_ca_cert,
        insecure=not cfg.verify_ssl,
        token=token,
        certificate_path=cfg.cert_file,
        private_key_path=cfg.key_file,
    )


@kopf.on.event(c.GROUP, c.VERSION, c.PLURAL)
async def poke(memo: kopf.Memo, type: str | None, body: kopf.Body, **_: Any) -> None:
    """Any change (spec, annotations, status written elsewhere): reconcile now. A deleted
    policy: its daemon stops (it is woken to see that). Not for a policy whose deletion
    waits for other finalizers: nothing is reconciled for it any more."""
    # kopf keeps this body (its daemon's copy) until the next event: without managedFields.
    drop_managed_fields(getattr(body, "_src", None))
    if type == "DELETED":
        memo[GONE_KEY] = True
        _wake(memo).set()
        return
    if body.get("metadata", {}).get("deletionTimestamp"):
        return
    _wake(memo).set()


async def _owned_event(
    resource: kopf.Resource,
    body: kopf.Body,
    type: str | None,
    namespace: str | None,
    labels: kopf.Labels,
    **_: Any,
) -> None:
    """An object the operator rendered changed: wake its policy if it drifted. On the
    event loop (a dictionary comparison): kopf runs a plain function in a thread pool of
    its own, a thread hop per event (six or seven rendered objects per policy, and the
    controller manager updates the Deployments' and PDBs' status several times each)."""
    policy = labels.get(c.LABEL_POLICY) or _owner_policy(body)
    if CONTROLLER is None or not policy or namespace is None:
        return
    live = None if type == "DELETED" else dict(body)
    name = str(body.get("metadata", {}).get("name", ""))
    kind = resource.kind or ""
    if CONTROLLER.applied.drifted(namespace, policy, kind, name, live):
        log.info("%s/%s: %s %s drifted from what was applied", namespace, policy, kind, name)
        wake = WAKERS.get((namespace, policy))
        if wake is not None:
            wake.set()


def _owner_policy(body: Mapping[str, Any]) -> str | None:
    """The RoutingPolicy that controls ``body`` by its ownerReferences: how an object
    whose labels were edited away (it left the filtered watch) is traced to its policy."""
    for ref in body.get("metadata", {}).get("ownerReferences") or []:
        if (
            ref.get("controller")
            and ref.get("kind") == c.KIND
            and (str(ref.get("apiVersion", "")).split("/")[0] == c.GROUP)
        ):
            return str(ref.get("name") or "") or None
    return None


# No client-side label filter here: the watches are filtered server-side (configure), and
# a filter here would drop the DELETED event of an object whose label was edited away.
for _group, _version, _plural in OWNED:
    kopf.on.event(_group, _version, _plural)(_owned_event)


def _reconcile(controller: Controller, namespace: str, name: str, seen: dict[str, Any]) -> float:
    """In a worker: reconcile on a private deep copy of the watch's snapshot (made here,
    not while the reconcile waits for a worker)."""
    return controller.reconcile_once(namespace, name, decision_copy(seen))


def _gone(memo: Any, body: kopf.Body) -> bool:
    return bool(memo.get(GONE_KEY)) or bool(body.get("metadata", {}).get("deletionTimestamp"))


@kopf.daemon(c.GROUP, c.VERSION, c.PLURAL, cancellation_timeout=10.0, initial_delay=0.0)
async def rollout_loop(
    name: str,
    namespace: str | None,
    body: kopf.Body,
    memo: kopf.Memo,
    stopped: kopf.DaemonStopped,
    **_: Any,
) -> None:
    """Reconcile one policy until it is deleted or this replica stops acting."""
    controller = _controller()
    if namespace is None:
        raise kopf.PermanentError("RoutingPolicy is namespaced; got an object without namespace")
    wake = _wake(memo)
    WAKERS[(namespace, name)] = wake
    backoff = Backoff()
    try:
        while not stopped and not _gone(memo, body):
            wake.clear()
            # The watch's latest copy (kopf keeps ``body`` current), taken on the event
            # loop (deep-copied in the worker); the controller decides on it when it is
            # current enough.
            seen = watch_snapshot(body)
            try:
                sleep = await POOL.run(controller, _reconcile, controller, namespace, name, seen)
                backoff.succeeded()
            except TransientError as exc:
                sleep = backoff.failed(exc.retry_after)
                log.warning("%s/%s: %s (retrying in %.0fs)", namespace, name, exc, sleep)
            except KubeError as exc:
                sleep = backoff.failed()
                log.error("%s/%s: %s (retrying in %.0fs)", namespace, name, exc, sleep)
            except Exception:  # keep the loop alive; the next round starts from status again
                sleep = backoff.failed()
                log.exception("%s/%s: reconcile failed", namespace, name)
            del seen  # not held while this daemon sleeps (a whole policy body each)
            if sleep == float("inf"):
                return
            # Sleep until the next evaluation is due, a watch event wakes us, or kopf
            # stops the daemon (policy deleted, operator exiting, peering paused us).
            waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
            _done, pending = await asyncio.wait(
                waits, timeout=sleep, return_when=asyncio.FIRST_COMPLETED
            )
            for task in pending:
                task.cancel()
    finally:
        if WAKERS.get((namespace, name)) is wake:
            del WAKERS[(namespace, name)]
        controller.forget(namespace, name)


def _without_finalizer(registry: Any, fn: Callable[..., Any]) -> None:
    """kopf's ``@kopf.daemon`` always asks for a finalizer; this daemon does not need one
    (see the module docstring). kopf has no option for it, so the registered handler is
    replaced by a copy that does not (a unit test checks it took effect)."""
    handlers = registry._spawning._handlers
    for i, handler in enumerate(handlers):
        if handler.fn is fn:
            handlers[i] = dataclasses.replace(handler, requires_finalizer=False)


_without_finalizer(kopf.get_default_registry(), rollout_loop)


def _forget_owned_objects(memories_cls: Any) -> None:
    """kopf keeps a per-object memory (memo, error throttler, daemon and index records:
    ~1.7 KiB) for every object of a watched kind it has seen (the operator's own,
    since the watches are filtered server-side) until the object is deleted. Nothing
    here uses them for those kinds: their only handler is :func:`_owned_event` (no
    memo, no daemon, no index, no change handlers that resume). So kopf's
    ``ephemeral`` memories (what it uses for admission requests) are used for them:
    made for the event, not kept.
    Policies keep theirs (their daemon and wake-up live there). kopf has no option for
    it, so its ``recall`` is wrapped (a unit test checks it took effect)."""
    original = memories_cls.recall
    if getattr(original, "tierguard_owned_ephemeral", False):
        return

    async def recall(self: Any, raw_body: Any, **kwargs: Any) -> Any:
        if (raw_body.get("apiVersion"), raw_body.get("kind")) in OWNED_KINDS:
            kwargs["ephemeral"] = True
        return await original(self, raw_body, **kwargs)

    recall.tierguard_owned_ephemeral = True  # type: ignore[attr-defined]
    memories_cls.recall = recall


_forget_owned_objects(ResourceMemories)
