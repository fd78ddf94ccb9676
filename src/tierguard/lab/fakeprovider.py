"""A simulated OpenAI-compatible provider for tests, the lab and benchmarks.

``tierguard fake-provider --port 9001 --profile profile.yaml`` or, in-process,
``create_fake_app(profile)``. It serves ``POST /v1/chat/completions`` (JSON and SSE
streaming, ``stream_options.include_usage`` honoured) and ``GET /v1/models``, with
per-model behaviour from a :class:`FakeProfile`. The router cannot tell it from a real
provider: nothing in the router knows it is fake.

Per-model knobs: :mod:`tierguard.lab.fakeprofile`. What is answered (quality draws,
reference text, the simulated LLM judge): :mod:`tierguard.lab.fakeanswers`. Conversations
(tool calls only the issuing model accepts, the prefix cache): :mod:`tierguard.lab.fakesession`.

Admin (tests and the lab inject outages at run time)
----------------------------------------------------
``GET/PUT /admin/profile`` read or replace the whole profile (JSON);
``PATCH /admin/profile/{model}`` merges fields into one model's behaviour;
``GET /admin/stats`` request counts per model and outcome; ``POST /admin/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import random
import secrets
import time
from typing import Any

from aiohttp import web

from tierguard.lab.fakeanswers import (
    answer_words,
    category_of,
    is_good,
    judge_reply,
    last_user_text,
    question_of,
    stable_hash,
)
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour, load_profile
from tierguard.lab.fakesession import PrefixCache, ToolCall, foreign_tool_call, tool_call_to_make

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the app

PROFILE: web.AppKey[list[FakeProfile]] = web.AppKey("profile", list)


class Stats:
    """Request counts per ``model:outcome``."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}


STATS: web.AppKey[Stats] = web.AppKey("stats", Stats)
RNG: web.AppKey[random.Random] = web.AppKey("rng", random.Random)
CACHE: web.AppKey[PrefixCache] = web.AppKey("prefix_cache", PrefixCache)
#: a random name per provider process: two providers serving the same model id still
#: refuse each other's tool-call ids
ISSUER: web.AppKey[str] = web.AppKey("issuer", str)


def _count(stats: Stats, key: str) -> None:
    stats.counts[key] = stats.counts.get(key, 0) + 1


def _error(
    status: int, message: str, type_: str, code: str, headers: dict[str, str] | None = None
) -> web.Response:
    return web.json_response(
        {"error": {"message": message, "type": type_, "param": None, "code": code}},
        status=status,
        headers=headers,
    )


def _latency(b: ModelBehaviour, rng: random.Random) -> float:
    if b.latency_median_s <= 0:
        return 0.0
    if b.latency_sigma <= 0:
        return b.latency_median_s
    return b.latency_median_s * math.exp(rng.gauss(0.0, b.latency_sigma))


async def chat(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
        model = str(body["model"])
        messages = body["messages"]
        assert isinstance(messages, list) and messages
    except Exception:
        return _error(400, "invalid request body", "invalid_request_error", "invalid_body")
    profile = request.app[PROFILE][0]
    stats = request.app[STATS]
    rng = request.app[RNG]
    _count(stats, f"{model}:received")
    b = profile.behaviour(model)
    rejected = [p for p in b.reject_params if p in body]
    if rejected:
        _count(stats, f"{model}:rejected")
        return web.json_response(
            {
                "error": {
                    "message": f"Unsupported parameter: '{rejected[0]}' (simulated)",
                    "type": "invalid_request_error",
                    "param": rejected[0],
                    "code": "unsupported_parameter",
                }
            },
            status=400,
        )
    issuer = f"{request.app[ISSUER]}:{model}"  # this provider's model, not a namesake's
    foreign = foreign_tool_call(issuer, messages)
    if foreign is not None and not b.accept_foreign_tool_calls:
        _count(stats, f"{model}:foreign_tool_call")
        return web.json_response(
            {
                "error": {
                    "message": f"Invalid 'tool_call_id': {foreign[:64]!r} was not issued by "
                    "this model (simulated).",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "invalid_tool_call_id",
                }
            },
            status=400,
        )
    roll = rng.random()
    if roll < b.rate_limit_rate:
        _count(stats, f"{model}:rate_limited")
        return _error(
            429,
            "Rate limit reached (simulated)",
            "rate_limit_error",
            "rate_limited",
            {"Retry-After": b.retry_after} if b.retry_after is not None else None,
        )
    roll -= b.rate_limit_rate
    if roll < b.error_rate:
        _count(stats, f"{model}:server_error")
        return _error(500, "Internal error (simulated)", "server_error", "server_error")
    roll -= b.error_rate
    if roll < b.hang_rate:
        _count(stats, f"{model}:hang")
        await asyncio.sleep(3600)
    delay = _latency(b, rng)
    if delay:
        await asyncio.sleep(delay)
    last = last_user_text(messages)
    prompt = question_of(messages)
    category = category_of(body, last)
    quality = b.quality.get(category, b.default_quality)
    good = is_good(model, prompt, quality)
    verdict = judge_reply(last, b.judge_knobs(), rng)
    words = verdict.split() if verdict else answer_words(model, prompt, good, b.completion_words)
    if b.big_word_bytes and len(words) > 1:
        words[1] += "x" * max(0, b.big_word_bytes - len(words[1]))
    marker = {"quality": "good" if good else "bad", "category": category, "model": model}
    call: ToolCall | None = tool_call_to_make(body, issuer, stats.counts.get(f"{model}:ok", 0))
    if call is not None:
        words = []
    prompt_tokens, cached = request.app[CACHE].lookup_and_store(
        model, messages, time.monotonic(), b.prompt_cache_ttl_s
    )
    usage: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": len(words) or 8,
    }
    usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
    usage["prompt_tokens_details"] = {"cached_tokens": min(cached, usage["prompt_tokens"])}
    message: dict[str, Any] = {"role": "assistant", "content": " ".join(words)}
    finish = "stop"
    if call is not None:
        message = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            ],
        }
        finish = "tool_calls"
    cid = f"chatcmpl-fake{stable_hash('id', str(time.time_ns()), str(rng.random())) % 10**12}"
    created = int(time.time())
    _count(stats, f"{model}:ok")
    if not body.get("stream"):
        return web.json_response(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": model,
                "choices": [{"index": 0, "finish_reason": finish, "message": message}],
                "usage": usage,
                "tierguard_fake": marker,
            }
        )
    resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await resp.prepare(request)

    serial = iter(range(1 << 30))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        obj = {
            "id": f"{cid}-{next(serial)}" if b.stream_vary_ids else cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            "tierguard_fake": marker,
        }
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    if call is not None:
        head = {"index": 0, "id": call.id, "type": "function"}
        await resp.write(
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{**head, "function": {"name": call.name, "arguments": ""}}],
                }
            )
        )
        await resp.write(
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments}}]})
        )
    elif b.stream_role_chunk:
        await resp.write(chunk({"role": "assistant", "content": ""}))
    fail_after = rng.random() < b.stream_fail_rate
    # (draw only for the faults a profile enables: seeded profiles keep their sequence)
    error_at = (
        b.stream_error_after_words
        if b.stream_error_rate and rng.random() < b.stream_error_rate
        else None
    )
    truncate = bool(b.stream_truncate_rate) and rng.random() < b.stream_truncate_rate
    for i, word in enumerate(words):
        if i == error_at:
            _count(stats, f"{model}:stream_error")
            err = {"message": "Internal error (simulated)", "type": "server_error", "code": None}
            await resp.write(b"data: " + json.dumps({"error": err}).encode() + b"\n\n")
            await resp.write_eof()
            return resp
        if b.inter_chunk_s and i > 0:  # the first word comes with the first byte
            await asyncio.sleep(b.inter_chunk_s)
        await resp.write(chunk({"content": word if i == 0 else " " + word}))
        if fail_after and i == 0:
            _count(stats, f"{model}:stream_cut")
            assert request.transport is not None
            request.transport.close()  # a broken connection, not a clean end
            return resp
        if truncate and i == 0:
            _count(stats, f"{model}:stream_truncated")
            await resp.write_eof()  # a clean end of the body, but no finish_reason/[DONE]
            return resp
    await resp.write(chunk({}, finish))
    options = body.get("stream_options") or {}
    if options.get("include_usage"):
        obj = {
            "id": f"{cid}-{next(serial)}" if b.stream_vary_ids else cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        await resp.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
    if not b.stream_omit_done:
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def models(request: web.Request) -> web.Response:
    names = [n for n in request.app[PROFILE][0].models if n != "*"]
    return web.json_response(
        {
            "object": "list",
            "data": [{"id": n, "object": "model", "created": 0, "owned_by": "fake"} for n in names],
        }
    )


async def get_profile(request: web.Request) -> web.Response:
    return web.json_response(request.app[PROFILE][0].model_dump())


async def put_profile(request: web.Request) -> web.Response:
    try:
        request.app[PROFILE][0] = FakeProfile.model_validate(await request.json())
    except Exception as exc:
        return _error(400, str(exc), "invalid_request_error", "invalid_profile")
    return await get_profile(request)


async def patch_model(request: web.Request) -> web.Response:
    name = request.match_info["model"]
    profile = request.app[PROFILE][0]
    try:
        current = profile.behaviour(name).model_dump()
        current.update(await request.json())
        models = dict(profile.models)
        models[name] = ModelBehaviour.model_validate(current)
        request.app[PROFILE][0] = profile.model_copy(update={"models": models})
    except Exception as exc:
        return _error(400, str(exc), "invalid_request_error", "invalid_profile")
    return await get_profile(request)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(request.app[STATS].counts)


async def reset(request: web.Request) -> web.Response:
    request.app[STATS].counts.clear()
    return web.json_response({})


def create_fake_app(profile: FakeProfile | None = None) -> web.Application:
    profile = profile or FakeProfile()
    app = web.Application()
    app[PROFILE] = [profile]
    app[STATS] = Stats()
    app[RNG] = random.Random(profile.seed)
    app[CACHE] = PrefixCache()
    app[ISSUER] = secrets.token_hex(4)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/chat/completions", chat)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/admin/profile", get_profile)
    app.router.add_put("/admin/profile", put_profile)
    app.router.add_patch("/admin/profile/{model}", patch_model)
    app.router.add_get("/admin/stats", stats)
    app.router.add_post("/admin/reset", reset)
    return app


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument(
        "--profile", default=None, help="profile YAML/JSON (default: fast, error-free, quality 0.9)"
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level="WARNING")
    web.run_app(
        create_fake_app(load_profile(args.profile)),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        shutdown_timeout=1.0,
        handler_cancellation=True,
    )
    return 0
