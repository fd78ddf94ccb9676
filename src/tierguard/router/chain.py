"""The fallback chain and the latency-budget hedge: serving one request from a route's
models. (One attempt's I/O is :mod:`tierguard.router.upstream`.)

The policy for one request (the status decisions are pure, in
:func:`~tierguard.router.upstream.classify_status`; the loop in :func:`run_chain` only
sequences I/O):

* Try the chain's first model. An attempt "succeeds" when it has something to give the
  client: the whole JSON answer, or a stream's first event with content.
* A failed attempt (connection error, 429, 5xx, per-model timeout, unreadable answer, an
  error event before any content) escalates to the next model at once.
* If the latency budget passes with no first content, the next model is started IN
  PARALLEL (a hedge) rather than abandoning the slow one: the first good answer wins and
  the other is cancelled. This is the seed's lesson: a fallback that waits for the cheap
  model to fail doubled p95; a hedge bounds it.
* A 4xx other than 408/429 also escalates while the chain has models left: a canary
  model that rejects a parameter the baseline accepts must not turn into client errors
  for the canary arm only (the escalation is what the ErrorRate gate sees).
* When every model failed, the LAST model of the chain speaks for the chain: its 429 is
  passed on as a 429 with its ``Retry-After`` (:class:`RateLimitedError`); its refusal of
  the request (4xx) as that 4xx (:class:`UpstreamRejectedError`), since then the request
  itself is most likely wrong; anything else is a 502 naming each attempt.
* A total deadline bounds everything; past it the client gets a 504 naming each attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from tierguard.api.metrics import ESCALATION_BUDGET, ESCALATION_ERROR, HEDGE_HEDGE, HEDGE_PRIMARY
from tierguard.router.errors import (
    DeadlineExceededError,
    RateLimitedError,
    RouterError,
    UpstreamFailedError,
    UpstreamRejectedError,
)
from tierguard.router.upstream import (
    AttemptError,
    JsonAnswer,
    StreamAnswer,
    UpstreamCall,
    UpstreamClient,
    UpstreamPool,
    classify_status,
)

log = logging.getLogger(__name__)


class ChainObserver(Protocol):
    """What the chain reports (the app turns these into metrics)."""

    def on_error(self, model: str, reason: str) -> None: ...

    def on_escalate(self, from_model: str, to_model: str, reason: str) -> None: ...

    def on_hedge(self, outcome: str) -> None: ...


class AttemptRunner(Protocol):
    """Runs one attempt instead of ``client.attempt`` (tracing wraps each attempt in a
    span this way); ``index`` is the attempt's position in the chain."""

    def __call__(
        self, index: int, client: UpstreamClient, call: UpstreamCall, stream: bool
    ) -> Awaitable[JsonAnswer | StreamAnswer]: ...


@dataclass
class Attempt:
    model: str
    result: str  # "ok", an error reason, or "cancelled"


@dataclass
class ChainResult:
    answer: JsonAnswer | StreamAnswer
    model: str
    index: int
    hedged: bool
    attempts: list[Attempt]

    @property
    def escalated(self) -> bool:
        return self.index > 0


def _discard(task: asyncio.Task[Any]) -> None:
    """Cancel a losing attempt; if it had already produced an answer, release it."""

    def _release(t: asyncio.Task[Any]) -> None:
        if not t.cancelled() and t.exception() is None:
            t.result().close()

    task.cancel()
    task.add_done_callback(_release)


async def run_chain(
    chain: tuple[str, ...],
    pool: UpstreamPool,
    call_for: Callable[[str], UpstreamCall],
    *,
    stream: bool,
    budget_s: float,
    deadline: float,
    observer: ChainObserver,
    runner: AttemptRunner | None = None,
) -> ChainResult:
    """Serve one request from ``chain`` (see the module docstring). ``deadline`` is in
    ``loop.time()`` seconds."""
    loop = asyncio.get_running_loop()
    pending: dict[asyncio.Task[Any], tuple[int, bool]] = {}
    attempts: list[Attempt] = []
    next_idx = 0
    hedged = False
    errors: dict[int, BaseException] = {}

    def start(by_budget: bool) -> None:
        nonlocal next_idx
        name = chain[next_idx]
        client = pool.clients[name]
        coro = (
            client.attempt(call_for(name), stream=stream)
            if runner is None
            else runner(next_idx, client, call_for(name), stream)
        )
        pending[asyncio.ensure_future(coro)] = (next_idx, by_budget)
        attempts.append(Attempt(name, "pending"))
        next_idx += 1

    start(False)
    budget_at = loop.time() + budget_s
    try:
        while True:
            now = loop.time()
            if now >= deadline:
                raise DeadlineExceededError(
                    _summary("no model answered within the deadline", attempts)
                )
            can_hedge = next_idx < len(chain)
            wait_until = min(deadline, budget_at) if can_hedge else deadline
            done, _ = await asyncio.wait(
                pending, timeout=max(0.0, wait_until - now), return_when=asyncio.FIRST_COMPLETED
            )
            if not done:
                if can_hedge and loop.time() >= budget_at:
                    last = max(i for i, _ in pending.values()) if pending else next_idx - 1
                    observer.on_escalate(chain[last], chain[next_idx], ESCALATION_BUDGET)
                    start(True)
                    hedged = True
                    budget_at = loop.time() + budget_s
                continue
            winner: tuple[Any, int, bool] | None = None
            failed_idx = -1
            for task in done:
                idx, by_budget = pending.pop(task)
                exc = task.exception()
                if exc is None:
                    if winner is None:
                        winner = (task.result(), idx, by_budget)
                        attempts[idx].result = "ok"
                    else:
                        task.result().close()
                        attempts[idx].result = "cancelled"
                    continue
                reason = exc.reason if isinstance(exc, AttemptError) else "protocol"
                if not isinstance(exc, AttemptError):
                    log.warning("upstream %s failed unexpectedly: %r", chain[idx], exc)
                attempts[idx].result = reason
                observer.on_error(chain[idx], reason)
                failed_idx = max(failed_idx, idx)
                errors[idx] = exc
            if winner is not None:
                answer, idx, by_budget = winner
                if hedged:
                    observer.on_hedge(HEDGE_HEDGE if by_budget else HEDGE_PRIMARY)
                return ChainResult(answer, chain[idx], idx, hedged, attempts)
            if not pending:
                if next_idx >= len(chain):
                    raise chain_error(chain, errors, attempts)
                observer.on_escalate(chain[failed_idx], chain[next_idx], ESCALATION_ERROR)
                start(False)
                budget_at = loop.time() + budget_s
    finally:
        for task, (idx, _) in pending.items():
            attempts[idx].result = "cancelled"
            _discard(task)


def chain_error(
    chain: tuple[str, ...], errors: dict[int, BaseException], attempts: list[Attempt]
) -> RouterError:
    """What the client gets when every model failed: the last model's 429 or refusal
    passed on, else a 502 (see the module docstring)."""
    last_idx = max(errors)
    last = errors[last_idx]
    if isinstance(last, AttemptError) and last.status == 429:
        return RateLimitedError(
            _summary(f"upstream {chain[last_idx]} is rate limited", attempts),
            headers=last.retry_headers,
        )
    if (
        isinstance(last, AttemptError)
        and last.status is not None
        and not classify_status(last.status)[1]
    ):
        return UpstreamRejectedError(last.status, f"upstream {chain[last_idx]}: {last}")
    return UpstreamFailedError(_summary("every model failed", attempts))


def _summary(headline: str, attempts: list[Attempt]) -> str:
    tried = ", ".join(f"{a.model}: {a.result}" for a in attempts)
    return f"{headline} ({tried})" if tried else headline
