"""Writing an upstream's answer to the client: the JSON body, or the SSE stream relayed
chunk by chunk. Each returns the response and a :class:`~tierguard.router.records.Delivery`
saying what the client actually got (time to first token, usage, the answer text when
it is wanted, and why a stream ended early)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from aiohttp import web

from tierguard.router.errors import DeadlineExceededError, RouterError, UpstreamFailedError
from tierguard.router.records import CLIENT_DISCONNECTED, Delivery
from tierguard.router.shadow import answer_text
from tierguard.router.sse import ChunkRewriter
from tierguard.router.upstream import JsonAnswer, StreamAnswer

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
        body=json.dumps(payload, separators=(",", ":")).encode(),
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
    """Forward SSE chunks as they arrive, rewritten by ``rewriter``; end with an OpenAI
    error event if the upstream fails (or the deadline passes) after the first chunk."""
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    failed: str | None = None
    ttft = loop.time() - started

    async def emit(line: bytes) -> bool:
        """Write one data line; False at the end of the stream."""
        out = rewriter.rewrite(line)
        if out is not None:
            await resp.write(out)
        return out != b"data: [DONE]\n\n"

    try:
        try:
            async with asyncio.timeout_at(deadline):
                more = await emit(answer.first)
                if more:
                    async for line in answer.lines():
                        if not await emit(line):
                            break
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
            failed = "upstream_stream_failed"
            log.warning("upstream stream broke after the first chunk: %s", exc)
            await _stream_error(
                resp,
                UpstreamFailedError("The upstream model failed while the answer was streaming."),
            )
        await resp.write_eof()
    except ConnectionResetError:
        failed = failed or CLIENT_DISCONNECTED
    finally:
        answer.close()
    text = rewriter.text if rewriter.collect else None
    return resp, Delivery(ttft_s=ttft, usage=rewriter.usage, answer=text, failed=failed)


async def _stream_error(resp: web.StreamResponse, err: RouterError) -> None:
    with contextlib.suppress(ConnectionResetError):
        await resp.write(b"data: " + json.dumps(err.body()).encode() + b"\n\n")
