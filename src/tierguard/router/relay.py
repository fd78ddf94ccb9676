"""Writing an upstream's answer to the client: the JSON body, or the SSE stream relayed
chunk by chunk. Each returns the response and a :class:`~tierguard.router.records.Delivery`
saying what the client actually got (time to first token, usage, the answer text when
it is wanted, and why a stream ended early)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from time import perf_counter

import aiohttp
from aiohttp import web

from tierguard.router import jsonlib
from tierguard.router.errors import DeadlineExceededError, RouterError, UpstreamFailedError
from tierguard.router.records import CLIENT_DISCONNECTED, Delivery
from tierguard.router.shadow import answer_text
from tierguard.router.sse import DONE_EVENT, ChunkRewriter, EventTooLargeError, StreamError
from tierguard.router.upstream import AttemptError, JsonAnswer, StreamAnswer

log = logging.getLogger("tierguard.router")


def json_response(
    answer: JsonAnswer, headers: dict[str, str], did: str, model: str, started: float
) -> tuple[web.Response, Delivery]:
    """The upstream's JSON answer with our id and the model name the client asked for."""
    payload = answer.payload
    payload["id"] = did
    payload["model"] = model
    usage = payload.get("usage")
    response = web.Response(
        body=jsonlib.dumps(payload),
        content_type="application/json",
        headers=headers,
    )
    delivery = Delivery(
        ttft_s=asyncio.get_running_loop().time() - started,
        usage=usage if isinstance(usage, dict) else None,
        answer=answer_text(payload),
    )
    return response, delivery


async def stream_response(
    request: web.Request,
    answer: StreamAnswer,
    headers: dict[str, str],
    rewriter: ChunkRewriter,
    started: float,
    deadline: float,
) -> tuple[web.StreamResponse, Delivery]:
    """Relay SSE events as they arrive, rewritten by ``rewriter``. Once the first chunk is
    out the status is sent, so any later failure ends the stream with an OpenAI error
    event (``data: {"error": ...}``) and is reported in ``Delivery.failed``: the upstream
    breaking, stalling, sending an error event or an oversized event, the deadline, and a
    stream that just stops with no ``finish_reason`` and no ``[DONE]`` (``truncated``). A
    stream that finished but left out ``[DONE]`` gets one from the router."""
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    failed: str | None = None
    ttft = loop.time() - started
    rewrite_s = 0.0

    async def emit(batch: list[bytes]) -> bool:
        """Write the events that arrived together in one write (one syscall, not one per
        event; the client gets the same bytes at the same moment); False at the end of
        the stream. Events rewritten before one that fails are still written."""
        nonlocal rewrite_s
        t0 = perf_counter()
        outs: list[bytes] = []
        try:
            for data in batch:
                out = rewriter.rewrite(data)
                if out is not None:
                    outs.append(out)
                if rewriter.done:
                    break
        finally:
            rewrite_s += perf_counter() - t0
            if outs:
                await resp.write(outs[0] if len(outs) == 1 else b"".join(outs))
        return not rewriter.done

    try:
        try:
            async with asyncio.timeout_at(deadline):
                more = await emit(answer.head)
                if more:
                    async for batch in answer.batches():
                        if not await emit(batch):
                            break
            if not rewriter.done:
                if not rewriter.finished():
                    raise StreamError("the stream ended before the answer was complete", TRUNCATED)
                await resp.write(DONE_EVENT)
        except TimeoutError:
            failed = "deadline_exceeded"
            await _stream_error(
                resp,
                DeadlineExceededError(
                    "The request deadline passed while the answer was streaming."
                ),
            )
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            failed = failure_reason(exc)
            log.warning("upstream stream failed after the first chunk (%s): %s", failed, exc)
            await _stream_error(resp, client_error(exc, failed))
        await resp.write_eof()
    except ConnectionResetError:
        failed = failed or CLIENT_DISCONNECTED
    finally:
        answer.close()
    text = rewriter.text if rewriter.collect else None
    return resp, Delivery(
        ttft_s=ttft, usage=rewriter.usage, answer=text, failed=failed, rewrite_s=rewrite_s
    )


TRUNCATED = "truncated"


def failure_reason(exc: BaseException) -> str:
    """The ``ERROR_REASONS`` label of a stream that failed after its first chunk."""
    if isinstance(exc, StreamError | AttemptError):
        return exc.reason
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ClientConnectionError | OSError):
        return "connect"
    return "protocol"


def client_error(exc: BaseException, reason: str) -> RouterError:
    """The error event a client gets when a stream fails after its first chunk."""
    if reason == TRUNCATED:
        return UpstreamFailedError(
            "The upstream model's stream ended before the answer was complete "
            "(no finish_reason and no [DONE]).",
            code=TRUNCATED,
        )
    if isinstance(exc, EventTooLargeError):
        return UpstreamFailedError(
            f"The upstream model sent an event larger than server.maxResponseBytes "
            f"({exc.limit} bytes).",
            code="response_too_large",
        )
    return UpstreamFailedError("The upstream model failed while the answer was streaming.")


async def _stream_error(resp: web.StreamResponse, err: RouterError) -> None:
    with contextlib.suppress(ConnectionResetError):
        await resp.write(b"data: " + json.dumps(err.body()).encode() + b"\n\n")
