"""OpenTelemetry traces of the real router app against in-process fake providers,
exported to the SDK's in-memory exporter: the span tree of a request with a fallback and
a shadow call, the fallback on error, traceparent in and out, evaluation events for the
judge's verdict and for feedback, and no prompt, answer or key in any attribute."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.typedefs import Handler
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util.types import AttributeValue

from routerkit import SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import traces as a
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router.app import RUNTIME, RouterSettings, create_app

pytestmark = pytest.mark.timeout(60)

CLIENT_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{CLIENT_TRACE_ID}-00f067aa0ba902b7-01"
UPSTREAM_KEY = "sk-upstream-NEVER-IN-TRACES-7f3a"
CLIENT_KEY = "sk-client-NEVER-IN-TRACES-91bd"
SECRET = "zebra-parsnip-4471 my password"


def _count(value: AttributeValue | None) -> int:
    """A token count attribute (an int; anything else fails the test)."""
    assert isinstance(value, int) and not isinstance(value, bool), value
    return value


class Env:
    def __init__(
        self, client: TestClient[web.Request, web.Application], exporter: InMemorySpanExporter
    ) -> None:
        self.client, self.exporter = client, exporter
        #: traceparent headers the fake upstreams received, by upstream model
        self.seen: dict[str, list[str]] = {}

    async def chat(self, content: str = SIMPLE_QUERY, **extra: Any) -> aiohttp.ClientResponse:
        body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
        headers = {"traceparent": TRACEPARENT, "Authorization": f"Bearer {CLIENT_KEY}"}
        return await self.client.post("/v1/chat/completions", json=body, headers=headers)

    async def background_done(self) -> None:
        rt = self.client.app[RUNTIME]
        await asyncio.gather(*list(rt.background - _loops(rt)), return_exceptions=True)

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())


def _loops(rt: Any) -> set[Any]:
    """The runtime's long-running tasks (flush loop), which never finish."""
    return {t for t in rt.background if "loop" in repr(t.get_coro())}


def recording_fake(profile: FakeProfile, seen: dict[str, list[str]]) -> web.Application:
    """A fake provider that also records the traceparent of every call."""
    app = create_fake_app(profile)

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "POST":
            body = await request.json()
            seen.setdefault(body.get("model", ""), []).append(
                request.headers.get("traceparent", "")
            )
        return await handler(request)

    app.middlewares.append(record)
    return app


@pytest.fixture
async def env(
    tiny_classifier: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Env]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    monkeypatch.setenv("TG_UPSTREAM_KEY", UPSTREAM_KEY)
    monkeypatch.setenv("TG_CLIENT_KEYS", CLIENT_KEY)
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    seen: dict[str, list[str]] = {}
    fast = FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)})
    fakes = {
        "big": TestServer(recording_fake(fast, seen)),
        "small": TestServer(recording_fake(fast, seen)),
    }
    for f in fakes.values():
        await f.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fakes["big"].make_url("/v1")),
        small_url=str(fakes["small"].make_url("/v1")),
        model_extra={"apiKey": {"env": "TG_UPSTREAM_KEY"}},
        server={"clientApiKeys": {"env": "TG_CLIENT_KEYS"}},
        **overrides,
    )
    settings = RouterSettings(config=RouterConfig.model_validate(cfg), tracer_provider=provider)
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    e = Env(client, exporter)
    e.seen = seen
    e.fakes = fakes  # type: ignore[attr-defined]
    try:
        yield e
    finally:
        await client.close()
        for f in fakes.values():
            await f.close()


async def patch(env: Env, server: str, model: str, **fields: Any) -> None:
    fake = env.fakes[server]  # type: ignore[attr-defined]
    async with (
        aiohttp.ClientSession() as s,
        s.patch(str(fake.make_url(f"/admin/profile/{model}")), json=fields) as r,
    ):
        assert r.status == 200


def by_kind(spans: list[ReadableSpan], kind: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get(a.CALL_KIND) == kind]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


CANARY_HEDGE_SHADOW = {
    "split": [{"tier": "simple", "weight": 100}],
    "shadow": {"sampleRate": 1.0},
    "routes": [
        {
            "tier": "simple",
            "baseline": "big",
            "candidate": "small",
            "fallbacks": ["big"],
            "latencyBudget": "100ms",
        },
        {"tier": "complex", "baseline": "big", "latencyBudget": "2s"},
    ],
}


@pytest.mark.parametrize("env", [CANARY_HEDGE_SHADOW], indirect=True)
async def test_span_tree_of_a_request_with_a_fallback_and_a_shadow_call(env: Env) -> None:
    """The canary (small) is slower than the latency budget, so the chain starts its
    fallback (big) as a hedge; small still answers first and serves; the answer is then
    shadowed against the baseline (big) and judged."""
    await patch(env, "small", "small-1", latency_median_s=0.4)
    await patch(env, "big", "big-1", latency_median_s=1.5)
    r = await env.chat()
    assert r.status == 200
    body = await r.json()
    assert r.headers["x-tierguard-model"] == "small"
    await env.background_done()
    spans = env.spans()

    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    assert server.name == "chat auto"
    assert format(server.context.trace_id, "032x") == CLIENT_TRACE_ID  # traceparent in
    sa = server.attributes or {}
    assert sa[a.OPERATION_NAME] == "chat"
    assert sa[a.PROVIDER_NAME] == "openai"
    assert sa[a.REQUEST_MODEL] == "auto"
    assert sa[a.RESPONSE_MODEL] == "small-1"
    assert sa[a.RESPONSE_ID] == body["id"]  # the signed decision id the client got
    assert (sa[a.TIER], sa[a.ARM], sa[a.REVISION]) == ("simple", "canary", "r1")
    assert str(sa[a.CLASSIFIER_DIGEST]).startswith("sha256:")
    assert len(str(sa[a.CONVERSATION_ID])) == 32
    assert _count(sa[a.USAGE_INPUT_TOKENS]) > 0 and _count(sa[a.USAGE_OUTPUT_TOKENS]) > 0
    assert sa[a.HTTP_RESPONSE_STATUS_CODE] == 200
    assert a.ERROR_TYPE not in sa

    (primary,) = by_kind(spans, a.CALL_PRIMARY)
    (fallback,) = by_kind(spans, a.CALL_FALLBACK)
    (shadow,) = by_kind(spans, a.CALL_SHADOW)
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert len(clients) == 3  # the similarity judge calls no model
    for span in clients:
        assert parent_id(span) == server.context.span_id
        assert span.context.trace_id == server.context.trace_id
        attrs = span.attributes or {}
        assert attrs[a.OPERATION_NAME] == "chat"
        assert attrs[a.CONVERSATION_ID] == sa[a.CONVERSATION_ID]
        assert span.name == f"chat {attrs[a.REQUEST_MODEL]!s}"
    pa, fa, sha = primary.attributes or {}, fallback.attributes or {}, shadow.attributes or {}
    assert (pa[a.REQUEST_MODEL], pa[a.MODEL], pa[a.CALL_SERVED]) == ("small-1", "small", True)
    assert pa[a.RESPONSE_MODEL] == "small-1"
    assert pa[a.RESPONSE_ID] != body["id"]  # the upstream's own id
    assert a.ERROR_TYPE not in pa
    assert (fa[a.REQUEST_MODEL], fa[a.FALLBACK_REASON]) == ("big-1", "budget")
    assert fa[a.ERROR_TYPE] == a.ERROR_CANCELLED  # the hedge lost
    assert fallback.status.status_code is StatusCode.ERROR
    assert sha[a.REQUEST_MODEL] == "big-1"
    assert _count(sha[a.USAGE_OUTPUT_TOKENS]) > 0

    # traceparent out: each upstream call carried its own CLIENT span as the parent
    sent = {tp.split("-")[2] for tps in env.seen.values() for tp in tps}
    assert {format(s.context.span_id, "016x") for s in clients} == sent
    assert all(tp.split("-")[1] == CLIENT_TRACE_ID for tps in env.seen.values() for tp in tps)

    # the judge's verdict: an evaluation event parented to the request's SERVER span,
    # linked to the CLIENT span that produced the judged answer
    (evaluation,) = [s for s in spans if s.name == f"evaluation {a.EVAL_SHADOW}"]
    assert parent_id(evaluation) == server.context.span_id
    assert [link.context.span_id for link in evaluation.links] == [primary.context.span_id]
    (event,) = evaluation.events
    ea = event.attributes or {}
    assert event.name == "gen_ai.evaluation.result"
    assert ea[a.EVALUATION_NAME] == a.EVAL_SHADOW
    assert ea[a.EVALUATION_SCORE_LABEL] in ("agree", "disagree")
    assert ea[a.RESPONSE_ID] == body["id"]
    assert "baseline big" in str(ea[a.EVALUATION_EXPLANATION])


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_fallback_after_an_error_and_feedback_event(env: Env) -> None:
    await patch(env, "small", "small-1", error_rate=1.0)
    r = await env.chat(stream=True, stream_options={"include_usage": True})
    assert r.status == 200
    await r.read()
    assert r.headers["x-tierguard-model"] == "big"
    spans = env.spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (primary,) = by_kind(spans, a.CALL_PRIMARY)
    (fallback,) = by_kind(spans, a.CALL_FALLBACK)
    pa, fa = primary.attributes or {}, fallback.attributes or {}
    assert pa[a.ERROR_TYPE] == "server_error"
    assert a.CALL_SERVED not in pa
    assert (fa[a.FALLBACK_REASON], fa[a.CALL_SERVED], fa[a.REQUEST_STREAM]) == (
        "error",
        True,
        True,
    )
    assert a.ERROR_TYPE not in fa
    assert _count(fa[a.USAGE_OUTPUT_TOKENS]) > 0  # a stream's usage, set when it was delivered
    # the stream's response id: the router's decision id on the server span
    did = (server.attributes or {})[a.RESPONSE_ID]

    r = await env.client.post(
        "/v1/feedback",
        json={"id": did, "rating": "down"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    assert r.status == 200
    (evaluation,) = [s for s in env.spans() if s.name == f"evaluation {a.EVAL_FEEDBACK}"]
    assert parent_id(evaluation) == server.context.span_id  # the stored trace context
    assert evaluation.context.trace_id == server.context.trace_id
    (event,) = evaluation.events
    ea = event.attributes or {}
    assert (ea[a.EVALUATION_NAME], ea[a.EVALUATION_SCORE_LABEL], ea[a.RESPONSE_ID]) == (
        a.EVAL_FEEDBACK,
        "down",
        did,
    )


@pytest.mark.parametrize("env", [CANARY_HEDGE_SHADOW], indirect=True)
async def test_no_content_or_secret_in_any_attribute(env: Env) -> None:
    """A distinctive prompt, the client's key and the upstreams' key appear nowhere in
    the telemetry (content capture is off by default)."""
    for stream in (False, True):
        r = await env.chat(SECRET, stream=stream, user="alice@example.com")
        assert r.status == 200
        await r.read()
    await env.background_done()
    r = await env.client.post(
        "/v1/feedback",
        json={"id": "not-a-decision-id", "rating": "up"},
        headers={"Authorization": f"Bearer {CLIENT_KEY}"},
    )
    spans = env.spans()
    assert len(spans) >= 4
    dump = json.dumps(
        [
            {
                "name": s.name,
                "attributes": dict(s.attributes or {}),
                "events": [[e.name, dict(e.attributes or {})] for e in s.events],
                "resource": dict(s.resource.attributes),
            }
            for s in spans
        ]
    )
    for needle in ("zebra-parsnip", UPSTREAM_KEY, CLIENT_KEY, "alice@example.com", "Bearer"):
        assert needle not in dump
    assert a.INPUT_MESSAGES not in dump and a.OUTPUT_MESSAGES not in dump


@pytest.mark.parametrize(
    "env", [{"observability": {"tracing": {"captureContent": True}}}], indirect=True
)
async def test_content_only_when_capture_is_enabled(env: Env) -> None:
    r = await env.chat(SECRET)
    assert r.status == 200
    (server,) = [s for s in env.spans() if s.kind is SpanKind.SERVER]
    sa = server.attributes or {}
    assert "zebra-parsnip" in str(sa[a.INPUT_MESSAGES])
    assert json.loads(str(sa[a.OUTPUT_MESSAGES]))[0]["role"] == "assistant"
    assert CLIENT_KEY not in json.dumps(dict(sa))


@pytest.mark.parametrize(
    "env",
    [
        {
            "split": [{"tier": "simple", "weight": 100}],
            "shadow": {"sampleRate": 1.0, "judge": {"type": "LLM", "model": "big"}},
        },
        {
            "split": [{"tier": "simple", "weight": 100}],
            "shadow": {
                "sampleRate": 1.0,
                "judge": {"type": "LLM", "model": "big", "mode": "Pairwise"},
            },
        },
    ],
    indirect=True,
    ids=["agreement", "pairwise"],
)
async def test_llm_judge_calls_are_client_spans_carrying_their_traceparent(env: Env) -> None:
    r = await env.chat()
    assert r.status == 200
    await env.background_done()
    spans = env.spans()
    (server,) = [s for s in spans if s.kind is SpanKind.SERVER]
    (judge,) = by_kind(spans, a.CALL_JUDGE)
    (shadow,) = by_kind(spans, a.CALL_SHADOW)
    assert parent_id(judge) == server.context.span_id
    assert (judge.attributes or {})[a.MODEL] == "big"
    judge_id = format(judge.context.span_id, "016x")
    shadow_id = format(shadow.context.span_id, "016x")
    # big-1 got the shadow call and the judge's call(s): two for a pairwise judge
    parents = [tp.split("-")[2] for tp in env.seen["big-1"]]
    assert parents.count(shadow_id) == 1
    state = env.client.app[RUNTIME].state
    assert state is not None, "the app is configured"
    pairwise = state.judge.pairwise
    assert parents.count(judge_id) == (2 if pairwise else 1)  # both orders, one span
    (evaluation,) = [s for s in spans if s.name == f"evaluation {a.EVAL_SHADOW}"]
    (event,) = evaluation.events
    assert "LLM judge big" in str((event.attributes or {})[a.EVALUATION_EXPLANATION])
