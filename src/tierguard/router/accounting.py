"""Accounting for a JSON answer after it is written (see :func:`account_soon`): the
bookkeeping of :func:`tierguard.router.pipeline.account` off the request's latency."""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter

from tierguard.router import pipeline
from tierguard.router.calling import ChainEvents
from tierguard.router.chain import ChainResult
from tierguard.router.overhead import Overhead
from tierguard.router.records import Delivery, Planned
from tierguard.router.runtime import Runtime
from tierguard.router.state import RouterState

log = logging.getLogger("tierguard.router")


def account_soon(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    events: ChainEvents,
    result: ChainResult,
    did: str,
    delivery: Delivery,
    overhead: Overhead,
) -> None:
    """:func:`~tierguard.router.pipeline.account` for a JSON answer, once it is on its
    way to the client: the view returns the response and aiohttp writes it in the same
    step of the task, before the loop runs this callback (so the client does not wait for
    the bookkeeping; a request that arrives after the answer is handled after it, so
    metrics, decision log and review sample read the same as before). The latency
    recorded is still the time the answer was ready; the bookkeeping counts as the
    request's ``write`` overhead, which is observed here. A failure here is logged (the
    client already has its answer)."""
    loop = asyncio.get_running_loop()
    loop.call_soon(
        _account_deferred, rt, state, planned, events, result, did, delivery, overhead, loop.time()
    )


def _account_deferred(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    events: ChainEvents,
    result: ChainResult,
    did: str,
    delivery: Delivery,
    overhead: Overhead,
    finished: float,
) -> None:
    t0 = perf_counter()
    try:
        pipeline.account(rt, state, planned, events, result, did, delivery, finished=finished)
    except Exception:
        log.exception("accounting for request %s failed", planned.request_id)
    overhead.write += perf_counter() - t0
    overhead.observe(rt.metrics.overhead_phases(state.config.policy))
