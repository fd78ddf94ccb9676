"""Calling upstream models: one pooled aiohttp session per model, the fallback chain and
the latency-budget hedge.

The policy for one request (pure decisions in :func:`classify_status`; the loop in
:func:`run_chain` only sequences I/O):

* Try the chain's first model. An attempt "succeeds" when it has something to give the
  client: the whole JSON answer (non-streaming) or the first SSE data chunk (streaming).
* A failed attempt (connection error, 429, 5xx, per-model timeout, unreadable answer)
  escalates to the next model at once.
* If the latency budget passes with no first byte, the next model is started IN PARALLEL
  (a hedge) rather than abandoning the slow one: the first good answer wins and the other
  is cancelled. This is the seed's lesson: a fallback that waits for the cheap model to
  fail doubled p95; a hedge bounds it.
* A 4xx other than 408/429 also escalates while the chain has models left: a canary
  model that rejects a parameter the baseline accepts must not turn into client errors
  for the canary arm only (the escalation is what the ErrorRate gate sees). Only when the
  last model refuses the request is the upstream's own 4xx passed to the client, since
  then the request itself is most likely wrong.
* A total deadline bounds everything; past it the client gets a 504 naming each attempt.

Upstream API keys come from the environment or a mounted file and live only in the
session's default headers (excluded from every repr and log line).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from tierguard.api.durations import parse_duration
from tierguard.api.metrics import ESCALATION_BUDGET, ESCALATION_ERROR, HEDGE_HEDGE, HEDGE_PRIMARY
from tierguard.api.routerconfig import SecretSource, UpstreamModel
from tierguard.router.errors import (
    DeadlineExceededError,
    UpstreamFailedError,
    UpstreamRejectedError,
)

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 2000


class SecretError(RuntimeError):
    """A configured secret (env var or file) cannot be read. The message names the source,
    never the value."""


def read_secret(source: SecretSource) -> str:
    if source.env is not None:
        value = os.environ.get(source.env)
        if value is None:
            raise SecretError(f"environment variable {source.env} is not set")
        return value.strip()
    assert source.file is not None
    try:
        return Path(source.file).read_text().strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret file {source.file}: {exc.strerror}") from None


# --------------------------------------------------------------------------- attempts


class AttemptError(Exception):
    """One upstream attempt failed. ``reason`` is an ``ERROR_REASONS`` label value."""

    def __init__(self, reason: str, message: str, status: int | None = None):
        super().__init__(message)
        self.reason = reason
        self.status = status


def classify_status(status: int) -> tuple[str, bool]:
    """(reason label, whether the failure is the upstream's rather than the request's)
    for a non-200 status."""
    if status == 429:
        return "rate_limited", True
    if status >= 500 or status == 408:
        return ("timeout" if status in (408, 504) else "server_error"), True
    if status in (401, 403, 404):
        return "client_error", True
    return "client_error", False


def _upstream_message(raw: bytes) -> tuple[str, str | None]:
    """The message (and param) of an upstream error body, OpenAI-shaped or not."""
    try:
        err = json.loads(raw)["error"]
        return str(err.get("message") or err), err.get("param")
    except (ValueError, KeyError, TypeError, AttributeError):
        return raw[:200].decode("utf-8", "replace"), None


class Answer(Protocol):
    def close(self) -> None: ...


@dataclass
class JsonAnswer:
    """A complete non-streaming answer."""

    payload: dict[str, Any]

    def close(self) -> None:
        return None


@dataclass
class StreamAnswer:
    """An open SSE stream whose first data line has been read (``first``)."""

    response: aiohttp.ClientResponse
    first: bytes
    read_timeout_s: float

    def close(self) -> None:
        self.response.release()

    async def lines(self) -> Any:
        """The data lines after the first (raw, stripped). The gap between two reads is
        bounded by the model's timeout (aiohttp's ``sock_read``, set on the request: a
        per-line ``wait_for`` would cost a task per chunk)."""
        content = self.response.content
        while True:
            try:
                raw = await content.readline()
            except aiohttp.ServerTimeoutError:
                raise AttemptError(
                    "timeout", f"no data for {self.read_timeout_s:g}s mid-stream"
                ) from None
            if not raw:
                return
            line = raw.strip()
            if line.startswith(b"data:"):
                yield line


@dataclass
class UpstreamClient:
    """One model's endpoint and its pooled session."""

    model: UpstreamModel
    session: aiohttp.ClientSession = field(repr=False)
    url: str
    timeout_s: float
    fingerprint: tuple[Any, ...] = field(repr=False)

    async def complete(self, body: dict[str, Any]) -> JsonAnswer:
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self.session.post(self.url, json=body) as resp:
                    raw = await resp.read()
                    if resp.status != 200:
                        raise _status_error(resp.status, raw)
            payload = json.loads(raw)
        except AttemptError:
            raise
        except TimeoutError:
            raise AttemptError("timeout", f"no answer within {self.timeout_s:g}s") from None
        except (aiohttp.ClientConnectionError, OSError) as exc:
            raise AttemptError("connect", f"connection failed: {type(exc).__name__}") from None
        except (ValueError, aiohttp.ClientPayloadError) as exc:
            raise AttemptError("protocol", f"unreadable answer: {exc}") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("choices"), list):
            raise AttemptError("protocol", "answer has no 'choices' list")
        return JsonAnswer(payload)

    async def open_stream(self, body: dict[str, Any]) -> StreamAnswer:
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self.session.post(
                    self.url,
                    json=body,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=10, sock_read=self.timeout_s
                    ),
                )
                if resp.status != 200:
                    raise _status_error(resp.status, (await resp.read())[:_MAX_ERROR_BODY])
                while True:
                    raw = await resp.content.readline()
                    if not raw:
                        raise AttemptError("protocol", "stream ended before any data")
                    line = raw.strip()
                    if line.startswith(b"data:"):
                        if line[5:].strip() == b"[DONE]":
                            raise AttemptError("protocol", "stream ended before any data")
                        return StreamAnswer(resp, line, self.timeout_s)
        except BaseException as exc:
            if resp is not None:
                resp.release()
            if isinstance(exc, AttemptError | asyncio.CancelledError):
                raise
            if isinstance(exc, TimeoutError):
                raise AttemptError("timeout", f"no first byte within {self.timeout_s:g}s") from None
            if isinstance(exc, aiohttp.ClientConnectionError | OSError):
                raise AttemptError("connect", f"connection failed: {type(exc).__name__}") from None
            if isinstance(exc, aiohttp.ClientPayloadError | ValueError):
                raise AttemptError("protocol", f"unreadable stream: {exc}") from None
            raise


def _status_error(status: int, raw: bytes) -> AttemptError:
    reason, _ = classify_status(status)
    message, _param = _upstream_message(raw)
    return AttemptError(reason, f"HTTP {status}: {message}", status)


class UpstreamPool:
    """The clients of one config generation. Clients whose settings did not change are
    carried over on reload, so a weight change never drops pooled connections."""

    def __init__(self, clients: dict[str, UpstreamClient]) -> None:
        self.clients = clients

    @staticmethod
    def _fingerprint(model: UpstreamModel, key: str | None) -> tuple[Any, ...]:
        return (model.base_url, model.timeout, hash(key))

    @classmethod
    def build(
        cls,
        models: list[UpstreamModel],
        previous: UpstreamPool | None = None,
        session_factory: Callable[[Mapping[str, str]], aiohttp.ClientSession] | None = None,
    ) -> tuple[UpstreamPool, list[UpstreamClient]]:
        """A pool for ``models`` and the previous clients no longer used (to close later).
        Raises :class:`SecretError` when a key cannot be read."""
        make = session_factory or new_session
        old = dict(previous.clients) if previous else {}
        clients: dict[str, UpstreamClient] = {}
        for model in models:
            key = read_secret(model.api_key) if model.api_key else None
            fp = cls._fingerprint(model, key)
            prior = old.get(model.name)
            if prior is not None and prior.fingerprint == fp:
                clients[model.name] = UpstreamClient(
                    model, prior.session, prior.url, prior.timeout_s, fp
                )
                del old[model.name]
                continue
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            clients[model.name] = UpstreamClient(
                model=model,
                session=make(headers),
                url=model.base_url.rstrip("/") + "/chat/completions",
                timeout_s=parse_duration(model.timeout),
                fingerprint=fp,
            )
        retired = [c for name, c in old.items() if name not in clients or clients[name] is not c]
        return cls(clients), retired

    async def close(self) -> None:
        await close_clients(list(self.clients.values()))


async def close_clients(clients: list[UpstreamClient]) -> None:
    seen: set[int] = set()
    for c in clients:
        if id(c.session) not in seen:
            seen.add(id(c.session))
            await c.session.close()


def new_session(headers: Mapping[str, str]) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60, ttl_dns_cache=300)
    return aiohttp.ClientSession(
        connector=connector,
        headers=dict(headers),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
        auto_decompress=True,
    )


# --------------------------------------------------------------------------- the chain


class ChainObserver(Protocol):
    """What the chain reports (the app turns these into metrics)."""

    def on_error(self, model: str, reason: str) -> None: ...

    def on_escalate(self, from_model: str, to_model: str, reason: str) -> None: ...

    def on_hedge(self, outcome: str) -> None: ...


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
    body_for: Callable[[str], dict[str, Any]],
    *,
    stream: bool,
    budget_s: float,
    deadline: float,
    observer: ChainObserver,
) -> ChainResult:
    """Serve one request from ``chain`` (see the module docstring). ``deadline`` is in
    ``loop.time()`` seconds."""
    loop = asyncio.get_running_loop()
    pending: dict[asyncio.Task[Any], tuple[int, bool]] = {}
    attempts: list[Attempt] = []
    next_idx = 0
    hedged = False
    last_error: BaseException | None = None

    def start(by_budget: bool) -> None:
        nonlocal next_idx
        name = chain[next_idx]
        client = pool.clients[name]
        body = body_for(name)
        coro = client.open_stream(body) if stream else client.complete(body)
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
                last_error = exc
            if winner is not None:
                answer, idx, by_budget = winner
                if hedged:
                    observer.on_hedge(HEDGE_HEDGE if by_budget else HEDGE_PRIMARY)
                return ChainResult(answer, chain[idx], idx, hedged, attempts)
            if not pending:
                if next_idx >= len(chain):
                    if (
                        isinstance(last_error, AttemptError)
                        and last_error.status is not None
                        and not classify_status(last_error.status)[1]
                    ):
                        raise UpstreamRejectedError(
                            last_error.status, f"upstream {chain[failed_idx]}: {last_error}"
                        )
                    raise UpstreamFailedError(_summary("every model failed", attempts))
                observer.on_escalate(chain[failed_idx], chain[next_idx], ESCALATION_ERROR)
                start(False)
                budget_at = loop.time() + budget_s
    finally:
        for task, (idx, _) in pending.items():
            attempts[idx].result = "cancelled"
            _discard(task)


def _summary(headline: str, attempts: list[Attempt]) -> str:
    tried = ", ".join(f"{a.model}: {a.result}" for a in attempts)
    return f"{headline} ({tried})" if tried else headline


@contextlib.asynccontextmanager
async def closing_answer(answer: JsonAnswer | StreamAnswer) -> Any:
    try:
        yield answer
    finally:
        answer.close()
