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
import contextlib
import logging
from typing import Any

import kopf

from tierguard.api import constants as c
from tierguard.operator.controller import Controller
from tierguard.operator.kube import KubeError

log = logging.getLogger("tierguard.operator.handlers")

#: Set by :mod:`tierguard.operator.cli` before kopf starts.
CONTROLLER: Controller | None = None
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
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Credentials from the same kubeconfig/in-cluster config as our own client."""
    return kopf.login_via_client(**kwargs)


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
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), timeout=sleep)
