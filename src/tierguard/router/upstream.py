"""Calling one upstream model: its pooled aiohttp session, one attempt (a whole JSON
answer, or a stream opened up to its first content), and how a failed attempt is named.

* An attempt "succeeds" when it has something to give the client: the whole JSON answer
  (non-streaming) or the first SSE event with content (streaming). Events before it (an
  empty role chunk, content-filter results) are kept and relayed with it; an error event
  before it (``data: {"error": ...}`` on a 200 stream) fails the attempt (reason
  ``stream_error``), so the chain moves on exactly as for an HTTP error.
* Nothing the router reads from an upstream has a fixed size limit below
  ``server.maxResponseBytes``: a JSON answer or one SSE event over it fails with a
  message naming that field (reason ``protocol``).
* The router's own optional additions to a body (``stream_options.include_usage`` for a
  model with ``streamUsage``) are never held against a model: if the upstream refuses
  the request with a 400/422, it is sent again without them and the client is
  remembered as refusing them (:class:`UpstreamCall`).
* A 429's ``Retry-After`` (and OpenAI's ``retry-after-ms``) are kept on the error, so
  the chain can pass the last model's rate limit on to the client.

The fallback chain and the hedge live in :mod:`tierguard.router.chain`. Upstream API
keys come from the environment or a mounted file and live only in the session's default
headers (excluded from every repr and log line).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from tierguard.api.durations import parse_duration
from tierguard.api.routerconfig import SecretSource, UpstreamModel
from tierguard.router import jsonlib
from tierguard.router.sse import SSEDecoder, StreamError, opening_kind

log = logging.getLogger(__name__)

_MAX_ERROR_BODY = 2000
#: response headers of a 429 passed on to the client
RETRY_HEADERS = ("Retry-After", "retry-after-ms")
#: statuses with which an upstream refuses a body's parameters
_REFUSED_PARAMS = (400, 422)


#: extra headers for the judge's upstream calls in the current task (the ``traceparent``
#: of the judge's span, set by :mod:`tierguard.router.shadowing`; a judge only knows
#: how to send a chat body, so its calls pick them up here)
JUDGE_HEADERS: ContextVar[dict[str, str] | None] = ContextVar("judge_headers", default=None)
#: Pre-flight mirrors set a list here while the judge runs; the judge's calls append
#: their cost in USD to it (``preflight_spend_usd_total{kind="judge"}``).
JUDGE_SPEND: ContextVar[list[float] | None] = ContextVar("judge_spend", default=None)


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
    """One upstream attempt failed. ``reason`` is an ``ERROR_REASONS`` label value;
    ``status`` the upstream's HTTP status if it answered one; ``retry_headers`` its
    ``Retry-After`` headers (429)."""

    def __init__(
        self,
        reason: str,
        message: str,
        status: int | None = None,
        retry_headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.reason = reason
        self.status = status
        self.retry_headers = retry_headers or {}


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
    """An open SSE stream, read up to its first event with content: ``head`` holds the
    data of the events so far (preamble events, then that first content event);
    :meth:`events` yields the data of the events after it."""

    response: aiohttp.ClientResponse
    head: list[bytes]
    decoder: SSEDecoder = field(repr=False)
    pending: list[bytes]
    read_timeout_s: float

    def close(self) -> None:
        self.response.release()

    async def events(self) -> AsyncIterator[bytes]:
        """The data of each event after the head (see :meth:`batches`)."""
        async for batch in self.batches():
            for data in batch:
                yield data

    async def batches(self) -> AsyncIterator[list[bytes]]:
        """The data of the events after the head, a list per upstream read (the events
        that arrived together, so the relay can write them together). The gap between two
        reads is bounded by the model's timeout (aiohttp's ``sock_read``, set on the
        request: a per-read ``wait_for`` would cost a task per chunk). Raises
        :class:`AttemptError` on a stall and :class:`~tierguard.router.sse.StreamError`
        on an oversized event."""
        while True:
            ready, self.pending = self.pending, []
            if ready:
                yield ready
            try:
                raw = await self.response.content.readany()
            except aiohttp.ServerTimeoutError:
                raise AttemptError(
                    "timeout", f"no data for {self.read_timeout_s:g}s mid-stream"
                ) from None
            if not raw:
                rest = self.decoder.close()
                if rest:
                    yield rest
                return
            self.pending = self.decoder.feed(raw)


@dataclass
class UpstreamCall:
    """The body of one attempt, and (when the router added optional parameters of its
    own) the same body without them, to send if the upstream refuses the first."""

    body: dict[str, Any]
    plain: dict[str, Any] | None = None
    #: extra request headers (the W3C ``traceparent`` of the attempt's span)
    headers: dict[str, str] | None = None


@dataclass
class UpstreamClient:
    """One model's endpoint and its pooled session."""

    model: UpstreamModel
    session: aiohttp.ClientSession = field(repr=False)
    url: str
    timeout_s: float
    fingerprint: tuple[Any, ...] = field(repr=False)
    max_response_bytes: int = 33_554_432
    refuses_additions: bool = False  # refused the router's own optional parameters once

    async def complete(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> JsonAnswer:
        try:
            async with asyncio.timeout(self.timeout_s):
                post = self.session.post(self.url, data=_json_payload(body), headers=headers)
                async with post as resp:
                    if resp.status != 200:
                        raw = await _read_limited(resp, _MAX_ERROR_BODY, truncate=True)
                        raise _status_error(resp.status, raw, resp.headers)
                    raw = await _read_limited(resp, self.max_response_bytes)
            payload = jsonlib.loads(raw)
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

    async def attempt(self, call: UpstreamCall, *, stream: bool) -> JsonAnswer | StreamAnswer:
        """One attempt with ``call``'s body. If the upstream refuses (400/422) a body
        carrying the router's own additions, the same body without them is sent at once;
        when that one is accepted, the additions were the problem and are left out for
        this model until the next config reload. (If it is refused too, the client's own
        request is at fault and that refusal is the attempt's result.)"""
        body = call.plain if call.plain is not None and self.refuses_additions else call.body
        h = call.headers
        try:
            return await (self.open_stream(body, h) if stream else self.complete(body, h))
        except AttemptError as exc:
            if call.plain is None or body is call.plain or exc.status not in _REFUSED_PARAMS:
                raise
            refusal = exc
        plain = call.plain
        answer = await (self.open_stream(plain, h) if stream else self.complete(plain, h))
        self.refuses_additions = True
        log.warning(
            "model %s refused the router's own stream_options (%s); sending only what the "
            "client sent until the next reload (set streamUsage: false for it)",
            self.model.name,
            refusal,
        )
        return answer

    async def open_stream(
        self, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> StreamAnswer:
        resp: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self.timeout_s):
                resp = await self.session.post(
                    self.url,
                    data=_json_payload(body),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(
                        total=None, sock_connect=10, sock_read=self.timeout_s
                    ),
                )
                if resp.status != 200:
                    raw = await _read_limited(resp, _MAX_ERROR_BODY, truncate=True)
                    raise _status_error(resp.status, raw, resp.headers)
                return await self._open(resp)
        except BaseException as exc:
            if resp is not None:
                resp.release()
            if isinstance(exc, AttemptError | asyncio.CancelledError):
                raise
            if isinstance(exc, StreamError):
                raise AttemptError(exc.reason, str(exc)) from None
            if isinstance(exc, TimeoutError):
                raise AttemptError(
                    "timeout", f"no first content within {self.timeout_s:g}s"
                ) from None
            if isinstance(exc, aiohttp.ClientConnectionError | OSError):
                raise AttemptError("connect", f"connection failed: {type(exc).__name__}") from None
            if isinstance(exc, aiohttp.ClientPayloadError | ValueError):
                raise AttemptError("protocol", f"unreadable stream: {exc}") from None
            raise

    async def _open(self, resp: aiohttp.ClientResponse) -> StreamAnswer:
        """Read events up to the first with content (see the module docstring)."""
        decoder = SSEDecoder(self.max_response_bytes)
        head: list[bytes] = []
        pending: list[bytes] = []
        ended = False
        while True:
            while pending:
                data = pending.pop(0)
                kind = opening_kind(data)
                if kind == "done":
                    raise AttemptError("protocol", "stream ended before any content")
                head.append(data)
                if kind == "content":
                    return StreamAnswer(resp, head, decoder, pending, self.timeout_s)
            if ended:
                raise AttemptError("protocol", "stream ended before any content")
            raw = await resp.content.readany()
            if raw:
                pending = decoder.feed(raw)
            else:
                pending, ended = decoder.close(), True


def _json_payload(body: dict[str, Any]) -> aiohttp.payload.BytesPayload:
    """The request body as compact JSON (aiohttp's ``json=`` would use ``json.dumps``)."""
    return aiohttp.payload.BytesPayload(jsonlib.dumps(body), content_type="application/json")


async def _read_limited(
    resp: aiohttp.ClientResponse, limit: int, *, truncate: bool = False
) -> bytes:
    """The body, at most ``limit`` bytes: cut there (``truncate``, for error bodies) or
    refused as too large (answers)."""
    if not truncate and resp.content_length is not None and resp.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        if total > limit:
            if truncate:
                chunks.append(chunk[: len(chunk) - (total - limit)])
                break
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> AttemptError:
    return AttemptError(
        "protocol", f"the answer is larger than server.maxResponseBytes ({limit} bytes)"
    )


def _status_error(status: int, raw: bytes, headers: Mapping[str, str]) -> AttemptError:
    reason, _ = classify_status(status)
    message, _param = _upstream_message(raw)
    retry = {h: headers[h] for h in RETRY_HEADERS if h in headers} if status == 429 else {}
    return AttemptError(reason, f"HTTP {status}: {message}", status, retry)


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
        max_response_bytes: int = 33_554_432,
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
                    model,
                    prior.session,
                    prior.url,
                    prior.timeout_s,
                    fp,
                    max_response_bytes,
                    prior.refuses_additions and prior.model.stream_usage == model.stream_usage,
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
                max_response_bytes=max_response_bytes,
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
