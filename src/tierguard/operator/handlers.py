"""The kopf handlers: the only module with ``@kopf.*`` decorators.

Thin on purpose (as in crate-operator): each handler checks, delegates to
:class:`~tierguard.operator.controller.Controller`, and maps failures to kopf's error
taxonomy. One daemon per RoutingPolicy runs its reconcile loop, so a policy is never
reconciled by two tasks of one process at once; a watch-event handler wakes it early, so a
spec change or an ``abort`` annotation acts within a second instead of at the next tick.
Daemons stop when kopf peering pauses this replica, so of two replicas only one acts (and
the status write's resourceVersion check makes even a brief overlap harmless).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from tierguard.api import constants as c
from tierguard.operator.controller import Controller
from tierguard.operator.kube import KubeError
from tierguard.operator.readiness import Readiness, watch_api
from tierguard.operator.readiness import serve as serve_readiness

log = logging.getLogger("tierguard.operator.handlers")

#: Set by :mod:`tierguard.operator.cli` before kopf starts.
CONTROLLER: Controller | None = None
#: Readiness endpoint (``--readiness``) and the watched namespaces (empty: all), set by
#: the CLI; None: no readiness endpoint.
READINESS_ENDPOINT: str | None = None
WATCHED_NAMESPACES: list[str] = []
WAKE_KEY = "tierguard_wake"


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
async def poke(memo: kopf.Memo, type: str | None, **_: Any) -> None:
    """Any change (spec, annotations, status written elsewhere): reconcile now."""
    _wake(memo).set()


@kopf.daemon(c.GROUP, c.VERSION, c.PLURAL, cancellation_timeout=10.0, initial_delay=0.0)
async def rollout_loop(
    name: str, namespace: str | None, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any
) -> None:
    """Reconcile one policy until it is deleted or this replica stops acting."""
    controller = _controller()
    if namespace is None:
        raise kopf.PermanentError("RoutingPolicy is namespaced; got an object without namespace")
    wake = _wake(memo)
    while not stopped:
        wake.clear()
        try:
            sleep = await asyncio.to_thread(controller.reconcile_once, namespace, name)
        except KubeError as exc:
            log.error("%s/%s: %s", namespace, name, exc)
            sleep = 2.0
        except Exception:  # keep the loop alive; the next round starts from status again
            log.exception("%s/%s: reconcile failed", namespace, name)
            sleep = 5.0
        if sleep == float("inf"):
            return
        # Sleep until the next evaluation is due, a watch event wakes us, or kopf stops
        # the daemon (policy deleted, operator exiting, peering paused this replica).
        waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
        _done, pending = await asyncio.wait(
            waits, timeout=sleep, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
