"""A simulated OpenAI-compatible provider for tests, the lab and benchmarks.

``tierguard fake-provider --port 9001 --profile profile.yaml`` or, in-process,
``create_fake_app(profile)``. It serves ``POST /v1/chat/completions`` (JSON and SSE
streaming, ``stream_options.include_usage`` honoured) and ``GET /v1/models``, with
per-model behaviour from a :class:`FakeProfile`. The router cannot tell it from a real
provider: nothing in the router knows it is fake.

Knobs (per model, keyed by the upstream model id; ``"*"`` is the default)
------------------------------------------------------------------------
``latency_median_s``, ``latency_sigma``
    Time to the first byte: lognormal with this median and log-sd (0 = fixed).
``inter_chunk_s``
    Streaming: delay between content chunks after the first.
``error_rate`` / ``rate_limit_rate`` / ``hang_rate``
    Share of requests answered 500, 429, or never answered (the connection stays open
    until the client gives up: a timeout).
``stream_fail_rate``
    Streaming: share of streams cut off with a broken connection after the first chunk.
``stream_error_rate``, ``stream_error_after_words``
    Streaming: share of streams answered 200 whose stream then carries an OpenAI error
    event (``data: {"error": ...}``) after that many content words (0: before any
    content, right after the empty role chunk) and ends.
``stream_role_chunk``
    Streaming: start with an empty ``{"role": "assistant", "content": ""}`` chunk
    (default, as OpenAI does).
``stream_truncate_rate``
    Streaming: share of streams that end cleanly (a proper end of the body) after the
    first content word, with no ``finish_reason`` and no ``[DONE]``.
``stream_omit_done``
    Streaming: end after the finish chunk (and usage) without ``data: [DONE]``, as some
    OpenAI-compatible servers do.
``stream_vary_ids``
    Streaming: every chunk carries a different ``id`` (as some gateways do).
``big_word_bytes``
    The answer's second word is padded to this many bytes (streaming: one long SSE line).
``retry_after``
    ``Retry-After`` header value sent with simulated 429s.
``reject_params``
    Request parameters this model refuses with a 400 (a model that does not support,
    say, ``logprobs``).
``completion_words``
    Length of an answer in words (one chunk per word when streaming).
``accept_foreign_tool_calls``
    Accept tool results for calls another model issued (default: refuse with a 400
    ``invalid_tool_call_id``, as providers that check ids do).
``prompt_cache_ttl_s``
    How long the model's prefix cache keeps a prompt prefix (0 disables it); cached
    prefixes are reported as ``usage.prompt_tokens_details.cached_tokens``.
Conversations (tool calls only the issuing model accepts, the prefix cache)
    See :mod:`tierguard.lab.fakesession`.
``quality`` and ``default_quality``
    Probability that an answer is *good*, per query category. A query's category is
    ``metadata.category`` of the request (an OpenAI parameter the router passes through)
    or else the first ``#tag`` in the last user message, else ``default``.

Answers are deterministic per (model, prompt): whether an answer is good is drawn from a
hash of (model, prompt) against the category's quality. In a conversation the prompt is
the first and the last user message (:func:`question_of`), so a stock follow-up is a new
question in every conversation. A good answer is the prompt's
*reference text* (the same for every model, so a similarity judge finds good answers of
two models agree) behind a short model-specific preamble; a bad answer is unrelated
filler. Every response carries the hidden marker ``tierguard_fake`` ({"quality": "good" |
"bad", "category", "model"}) as an extra top-level field (and on every stream chunk),
which simulated judges and users read; real clients ignore unknown fields.

Simulated LLM judge
-------------------
A request whose last user message holds ``Answer A:`` and ``Answer B:`` (the router's
LLM-judge prompt) is answered ``AGREE`` when neither answer is a bad one (no filler
words) and ``DISAGREE`` otherwise, so ``shadow.judge.type: LLM`` works against the fake.
The pairwise prompt (it offers ``[[TIE]]``) is answered ``[[A]]``, ``[[B]]`` or
``[[TIE]]`` from the same truth, with the judge imperfections ``judge_position_bias``,
``judge_length_bias``, ``judge_noise`` and ``judge_unreadable_rate`` of the judge model
(:mod:`tierguard.lab.fakejudge`); its errors and stalls are ``error_rate``/``hang_rate``.

Admin (tests and the lab inject outages at run time)
----------------------------------------------------
``GET/PUT /admin/profile`` read or replace the whole profile (JSON);
``PATCH /admin/profile/{model}`` merges fields into one model's behaviour;
``GET /admin/stats`` request counts per model and outcome; ``POST /admin/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import math
import random
import re
import secrets
import time
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from tierguard.lab.fakejudge import JudgeKnobs, pairwise_reply, split_pairwise
from tierguard.lab.fakesession import PrefixCache, ToolCall, foreign_tool_call, tool_call_to_make

log = logging.getLogger(__name__)

_TAG = re.compile(r"#([a-z0-9_-]+)", re.IGNORECASE)
_WORDS = (
    "the",
    "account",
    "order",
    "refund",
    "delivery",
    "password",
    "settings",
    "invoice",
    "plan",
    "support",
    "team",
    "update",
    "status",
    "shipping",
    "address",
    "payment",
    "card",
    "window",
    "browser",
    "device",
    "restart",
    "help",
    "check",
    "confirm",
    "option",
    "menu",
    "profile",
    "email",
    "message",
    "screen",
    "button",
    "link",
    "page",
)
_FILLER = (
    "perhaps",
    "banana",
    "weather",
    "guitar",
    "mountain",
    "painting",
    "elephant",
    "orchestra",
    "volcano",
    "lantern",
    "marathon",
    "origami",
    "saxophone",
    "glacier",
    "tapestry",
)


class ModelBehaviour(BaseModel):
    model_config = ConfigDict(extra="forbid")

    latency_median_s: float = Field(default=0.02, ge=0)
    latency_sigma: float = Field(default=0.0, ge=0)
    inter_chunk_s: float = Field(default=0.0, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)
    rate_limit_rate: float = Field(default=0.0, ge=0, le=1)
    hang_rate: float = Field(default=0.0, ge=0, le=1)
    stream_fail_rate: float = Field(default=0.0, ge=0, le=1)
    stream_error_rate: float = Field(default=0.0, ge=0, le=1)
    stream_error_after_words: int = Field(default=0, ge=0)
    stream_truncate_rate: float = Field(default=0.0, ge=0, le=1)
    stream_role_chunk: bool = True
    stream_vary_ids: bool = False
    stream_omit_done: bool = False
    big_word_bytes: int = Field(default=0, ge=0, le=64 << 20)
    retry_after: str | None = None
    completion_words: int = Field(default=24, ge=1, le=4096)
    reject_params: list[str] = Field(default_factory=list)
    prompt_cache_ttl_s: float = Field(default=300.0, ge=0)
    #: accept tool results for calls another model issued (as lenient providers do)
    accept_foreign_tool_calls: bool = False
    quality: dict[str, float] = Field(default_factory=dict)
    default_quality: float = Field(default=0.9, ge=0, le=1)
    #: judge mode (pairwise prompts), see tierguard.lab.fakejudge
    judge_position_bias: float = Field(default=0.0, ge=0, le=1)
    judge_length_bias: float = Field(default=0.0, ge=0, le=1)
    judge_noise: float = Field(default=0.0, ge=0, le=1)
    judge_unreadable_rate: float = Field(default=0.0, ge=0, le=1)

    def judge_knobs(self) -> JudgeKnobs:
        return JudgeKnobs(
            position_bias=self.judge_position_bias,
            length_bias=self.judge_length_bias,
            noise=self.judge_noise,
            unreadable_rate=self.judge_unreadable_rate,
        )


class FakeProfile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, ModelBehaviour] = Field(default_factory=lambda: {"*": ModelBehaviour()})
    seed: int | None = None

    def behaviour(self, model: str) -> ModelBehaviour:
        return self.models.get(model) or self.models.get("*") or ModelBehaviour()


# --------------------------------------------------------------------------- pure parts


def _h(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode()).digest()[:8], "big")


def last_user_text(messages: list[Any]) -> str:
    for msg in reversed(messages):
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _user_texts(messages: list[Any]) -> list[str]:
    out = []
    for msg in messages:
        if isinstance(msg, dict) and msg.get("role") == "user":
            content = msg.get("content")
            if isinstance(content, str):
                out.append(content)
            elif isinstance(content, list):
                out.append(" ".join(str(p.get("text", "")) for p in content if isinstance(p, dict)))
    return out


def question_of(messages: list[Any]) -> str:
    """What an answer's quality is drawn for: the last user message, and in a conversation
    the first one before it (a follow-up such as "thanks, and where is my order?" is a
    different question in every conversation, not one draw shared by all of them)."""
    texts = _user_texts(messages)
    if not texts:
        return ""
    if len(texts) == 1 or texts[0] == texts[-1]:
        return texts[-1]
    return texts[0] + "\n" + texts[-1]


def category_of(body: dict[str, Any], prompt: str) -> str:
    meta = body.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("category"), str):
        return str(meta["category"])
    tag = _TAG.search(prompt)
    return tag.group(1).lower() if tag else "default"


def is_good(model: str, prompt: str, quality: float) -> bool:
    return (_h("quality", model, prompt) % 10_000) / 10_000 < quality


def reference_answer(prompt: str, words: int) -> list[str]:
    """The prompt's reference text: the same for every model."""
    rng = random.Random(_h("ref", prompt))
    return [rng.choice(_WORDS) for _ in range(words)]


def answer_words(model: str, prompt: str, good: bool, words: int) -> list[str]:
    preamble = ["Sure,", "here", "you", "go:"] if _h("style", model) % 2 else ["Certainly."]
    if good:
        return preamble + reference_answer(prompt, words)
    rng = random.Random(_h("bad", model, prompt))
    return preamble + [rng.choice(_FILLER) for _ in range(words)]


_FILLER_SET = frozenset(_FILLER)


def reads_as_bad(text: str) -> bool:
    """Whether a reader of this answer (a simulated user or judge) sees a bad answer: bad
    answers are made of filler words, good ones never contain any."""
    return any(w.strip(".,:").lower() in _FILLER_SET for w in text.split())


def judge_reply(
    prompt: str, knobs: JudgeKnobs | None = None, rng: random.Random | None = None
) -> str | None:
    """The simulated judge's verdict for a judge prompt (pairwise or agreement), else
    None."""
    pair = split_pairwise(prompt)
    if pair is not None:
        return pairwise_reply(*pair, reads_as_bad, knobs or JudgeKnobs(), rng or random.Random())
    _, sep_a, rest = prompt.partition("Answer A:")
    answer_a, sep_b, answer_b = rest.partition("Answer B:")
    if not (sep_a and sep_b):
        return None
    return "DISAGREE" if reads_as_bad(answer_a + " " + answer_b) else "AGREE"


def count_tokens(messages: list[Any]) -> int:
    total = 0
    for msg in messages:
        if isinstance(msg, dict):
            content = msg.get("content")
            if isinstance(content, str):
                total += len(content.split()) + 3
    return max(1, total)


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
    cid = f"chatcmpl-fake{_h('id', str(time.time_ns()), str(rng.random())) % 10**12}"
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


def load_profile(path: str | None) -> FakeProfile:
    if not path:
        return FakeProfile()
    return FakeProfile.model_validate(yaml.safe_load(Path(path).read_text()) or {})


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
