"""Conversations through two router replicas behind one client (in-process apps on
loopback, in-process fake providers that keep a prefix cache and accept tool-call ids
only from the model that issued them):

* every request of a conversation may land on either replica, and both decide the same;
* a conversation's tier never goes down; tool-result turns reach the issuing model, also
  after the canary weight moved, so no 400 from a foreign tool-call id in 1,000 agent
  turns; the router's unsafe-switch counter stays 0;
* prompts too long for a model climb as a context_window escalation with outcome ok;
* prompt_cache_key and cache_control reach the upstream untouched; cached tokens are
  exported per tier x arm x model.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routerkit import COMPLEX, SIMPLE, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.conversations import TOOLS, Conversation
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router.app import RUNTIME, RouterSettings, create_app, reload_text

pytestmark = pytest.mark.timeout(300)

TIER_RANK = {"simple": 0, "complex": 1}


def sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        lab = line[len(name) + 1 : line.index("}")]
        pairs = dict(p.split("=", 1) for p in lab.split(",") if p)
        if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@dataclass
class Replicas:
    clients: list[TestClient[web.Request, web.Application]]
    fakes: dict[str, TestServer]
    cfg: dict[str, Any]

    async def metrics(self, i: int) -> str:
        return await (await self.clients[i].get("/metrics")).text()

    async def reload(self, **overrides: Any) -> None:
        self.cfg = {**self.cfg, **overrides}
        for c in self.clients:
            ok = await reload_text(c.app[RUNTIME], json.dumps(self.cfg))
            assert ok


def fake() -> TestServer:
    return TestServer(
        create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)}))
    )


@pytest.fixture
async def replicas(
    tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> AsyncIterator[Replicas]:
    monkeypatch.setenv("TG_SIGNING_KEY", "the-same-key-on-every-replica")
    overrides: dict[str, Any] = getattr(request, "param", {})
    fakes = {"big": fake(), "small": fake()}
    for f in fakes.values():
        await f.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fakes["big"].make_url("/v1")),
        small_url=str(fakes["small"].make_url("/v1")),
        weight=50.0,
        feedback={"signingKey": {"env": "TG_SIGNING_KEY"}},
        **overrides,
    )
    clients = []
    for _ in range(2):
        app = create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
    try:
        yield Replicas(clients, fakes, cfg)
    finally:
        for c in clients:
            await c.close()
        for f in fakes.values():
            await f.close()


async def read_stream(resp: aiohttp.ClientResponse) -> dict[str, Any]:
    """Reassemble a streamed answer into a chat.completion-like payload."""
    content: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    usage = None
    async for raw in resp.content:
        line = raw.strip()
        if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
            continue
        chunk = json.loads(line[5:])
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            if isinstance(delta.get("content"), str):
                content.append(delta["content"])
            for tc in delta.get("tool_calls") or ():
                slot = calls.setdefault(
                    tc["index"], {"type": "function", "function": {"name": "", "arguments": ""}}
                )
                if tc.get("id"):
                    slot["id"] = tc["id"]
                fn = tc.get("function") or {}
                slot["function"]["name"] += fn.get("name") or ""
                slot["function"]["arguments"] += fn.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": "".join(content) or None}
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return {"choices": [{"message": message}], "usage": usage}


async def test_two_replicas_agree_tiers_only_go_up_and_tool_results_reach_their_issuer(
    replicas: Replicas,
) -> None:
    rng = random.Random(15)
    agent_turns = 0
    conversations = 0
    weights = [50.0, 100.0, 0.0, 25.0]
    next_move, moves = 100, 0
    decisions_compared = 0
    while agent_turns < 1000:
        conversations += 1
        conv = Conversation(f"c{conversations}", f"user-{rng.randrange(50)}", "x", agent=True)
        headers = {"x-session-id": conv.id}
        tiers: list[int] = []
        models_at_tool_turn: list[tuple[str, str]] = []
        for _turn in range(rng.randint(1, 4)):
            opener = rng.choice(COMPLEX if rng.random() < 0.3 else SIMPLE)
            conv.messages.append(
                {"role": "user", "content": opener if not tiers else rng.choice(SIMPLE)}
            )
            issuer: str | None = None
            for round_ in range(3):  # user text, then the tool results (two rounds)
                body = conv.request_body("auto")
                body["tools"] = TOOLS
                stream = rng.random() < 0.25
                if stream:
                    body["stream"] = True
                    body["stream_options"] = {"include_usage": True}
                i = rng.randrange(2)
                if rng.random() < 0.05:  # the other replica decides the same
                    other = await replicas.clients[1 - i].post(
                        "/v1/chat/completions", json={**body, "stream": False}, headers=headers
                    )
                    assert other.status == 200, await other.text()
                    mirror = (other.headers["x-tierguard-tier"], other.headers["x-tierguard-arm"])
                    await other.read()
                else:
                    mirror = None
                r = await replicas.clients[i].post(
                    "/v1/chat/completions", json=body, headers=headers
                )
                assert r.status == 200, await r.text()  # never a foreign tool-call id
                tier, arm, model = (
                    r.headers["x-tierguard-tier"],
                    r.headers["x-tierguard-arm"],
                    r.headers["x-tierguard-model"],
                )
                if mirror is not None:
                    assert mirror == (tier, arm)
                    decisions_compared += 1
                payload = await read_stream(r) if stream else await r.json()
                tiers.append(TIER_RANK[tier])
                if round_ > 0:
                    agent_turns += 1
                    assert issuer is not None
                    models_at_tool_turn.append((issuer, model))
                issuer = model
                if not conv.add_answer(payload):
                    break
                if agent_turns >= next_move:
                    # the rollout moves (up, or back down) while a tool call is pending:
                    # the results still go to the model that issued the call
                    weights = weights[1:] + weights[:1]
                    await replicas.reload(split=[{"tier": "simple", "weight": weights[0]}])
                    next_move += 100
                    moves += 1
        assert tiers == sorted(tiers), tiers  # monotone within the conversation
        assert all(a == b for a, b in models_at_tool_turn), models_at_tool_turn
    assert decisions_compared > 10 and moves >= 9
    for i in range(2):
        text = await replicas.metrics(i)
        assert sample(text, "tierguard_unsafe_switches_total") == 0
        assert sample(text, "tierguard_stateful_turns_total", outcome="locked") > 0
        assert sample(text, "tierguard_stateful_turns_total", outcome="unlocked") == 0
        assert sample(text, "tierguard_session_keys_total", key_source="header") > 0
        assert sample(text, "tierguard_session_tier_changes_total", from_tier="complex") == 0
        assert sample(text, "tierguard_tokens_total", kind="cached") > 0
        assert sample(text, "tierguard_classifier_cache_total", outcome="hit") > 0


async def test_a_complex_opener_keeps_its_tier_on_simple_follow_ups(replicas: Replicas) -> None:
    messages: list[dict[str, Any]] = [{"role": "user", "content": COMPLEX[0]}]
    seen: list[str] = []
    for follow_up in SIMPLE[:4]:
        r = await replicas.clients[len(seen) % 2].post(
            "/v1/chat/completions", json={"model": "auto", "messages": messages}
        )
        assert r.status == 200
        seen.append(r.headers["x-tierguard-tier"])
        messages += [(await r.json())["choices"][0]["message"]]
        messages.append({"role": "user", "content": follow_up})
    assert seen == ["complex"] * 4
    text = await replicas.metrics(0) + await replicas.metrics(1)
    assert sample(text, "tierguard_session_keys_total", key_source="fingerprint") == 4


@pytest.mark.parametrize(
    "replicas",
    [{"classifier": {"tiering": "Request", "tiers": [{"name": "simple"}, {"name": "complex"}]}}],
    indirect=True,
)
async def test_per_request_tiering_is_still_available(replicas: Replicas) -> None:
    messages = [
        {"role": "user", "content": COMPLEX[0]},
        {"role": "assistant", "content": "..."},
        {"role": "user", "content": SIMPLE[0]},
    ]
    r = await replicas.clients[0].post(
        "/v1/chat/completions", json={"model": "auto", "messages": messages}
    )
    assert r.headers["x-tierguard-tier"] == "simple"


async def test_a_prompt_too_long_for_the_cheap_model_climbs_without_an_error(
    replicas: Replicas,
) -> None:
    models = [dict(m) for m in replicas.cfg["models"]]
    for m in models:
        m["contextWindow"] = 300 if m["name"] == "small" else 1_000_000
    await replicas.reload(models=models, split=[{"tier": "simple", "weight": 100.0}])
    long = SIMPLE[0] + " please" * 600
    r = await replicas.clients[0].post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "user", "content": long}]},
    )
    assert r.status == 200
    assert (r.headers["x-tierguard-arm"], r.headers["x-tierguard-model"]) == ("canary", "big")
    text = await replicas.metrics(0)
    assert sample(text, "tierguard_escalations_total", reason="context_window") == 1
    assert sample(text, "tierguard_requests_total", outcome="ok", model="big") == 1
    assert sample(text, "tierguard_requests_total", outcome="escalated") == 0


async def test_cache_fields_pass_through_untouched(tiny_classifier: Path) -> None:
    seen: list[dict[str, Any]] = []

    async def capture(request: web.Request) -> web.Response:
        seen.append(await request.json())
        return web.json_response(
            {
                "id": "x",
                "object": "chat.completion",
                "model": "m",
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}],
                "usage": {
                    "prompt_tokens": 10,
                    "completion_tokens": 1,
                    "prompt_tokens_details": {"cached_tokens": 8},
                },
            }
        )

    upstream_app = web.Application()
    upstream_app.router.add_post("/v1/chat/completions", capture)
    upstream = TestServer(upstream_app)
    await upstream.start_server()
    url = str(upstream.make_url("/v1"))
    cfg = router_config(tiny_classifier, big_url=url, small_url=url)
    client = TestClient(
        TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
    )
    await client.start_server()
    try:
        parts = [{"type": "text", "text": SIMPLE[0], "cache_control": {"type": "ephemeral"}}]
        body = {
            "model": "auto",
            "prompt_cache_key": "conv-42",
            "messages": [{"role": "user", "content": parts}],
        }
        r = await client.post("/v1/chat/completions", json=body)
        assert r.status == 200
        assert seen[0]["prompt_cache_key"] == "conv-42"
        assert seen[0]["messages"][-1]["content"] == parts
        text = await (await client.get("/metrics")).text()
        assert sample(text, "tierguard_session_keys_total", key_source="prompt_cache_key") == 1
        assert (
            sample(text, "tierguard_tokens_total", kind="cached", tier="simple", model="big") == 8
        )
    finally:
        await client.close()
        await upstream.close()


async def test_fake_providers_refuse_each_others_tool_call_ids() -> None:
    """The simulation is faithful: even two providers serving the same model id refuse a
    tool result whose call the other one issued, and report cached prompt tokens."""
    a, b = fake(), fake()
    for f in (a, b):
        await f.start_server()
    try:
        async with aiohttp.ClientSession() as s:
            msgs: list[dict[str, Any]] = [{"role": "user", "content": "where is my order"}]
            body = {"model": "same-1", "messages": msgs, "tools": TOOLS}
            async with s.post(str(a.make_url("/v1/chat/completions")), json=body) as r:
                first = await r.json()
            call = first["choices"][0]["message"]["tool_calls"][0]
            msgs += [
                first["choices"][0]["message"],
                {"role": "tool", "tool_call_id": call["id"], "content": "shipped"},
            ]
            async with s.post(str(b.make_url("/v1/chat/completions")), json=body) as r:
                assert r.status == 400
                assert (await r.json())["error"]["code"] == "invalid_tool_call_id"
            async with s.post(str(a.make_url("/v1/chat/completions")), json=body) as r:
                assert r.status == 200
                usage = (await r.json())["usage"]
            assert 0 < usage["prompt_tokens_details"]["cached_tokens"] < usage["prompt_tokens"]
    finally:
        await a.close()
        await b.close()


async def test_a_tool_result_whose_issuer_fails_falls_back_upward_and_is_counted(
    replicas: Replicas,
) -> None:
    """The issuing model (the cheap canary) is down when the tool result comes back: the
    turn goes to the same tier's baseline (a lenient provider that accepts the id), never
    to a cheaper tier, and is counted as a lock fallback."""
    await replicas.reload(split=[{"tier": "simple", "weight": 100.0}])
    conv = Conversation("fb", "u", "x", agent=True)
    conv.messages.append({"role": "user", "content": SIMPLE[0]})
    r = await replicas.clients[0].post("/v1/chat/completions", json=conv.request_body("auto"))
    assert r.status == 200 and r.headers["x-tierguard-model"] == "small"
    assert conv.add_answer(await r.json())
    async with aiohttp.ClientSession() as s:
        for name, fields in (
            ("small", {"error_rate": 1.0}),
            ("big", {"accept_foreign_tool_calls": True}),
        ):
            url = str(replicas.fakes[name].make_url(f"/admin/profile/{name}-1"))
            async with s.patch(url, json=fields) as resp:
                assert resp.status == 200
    r = await replicas.clients[1].post("/v1/chat/completions", json=conv.request_body("auto"))
    assert r.status == 200, await r.text()
    assert (r.headers["x-tierguard-model"], r.headers["x-tierguard-tier"]) == ("big", "simple")
    assert r.headers["x-tierguard-arm"] == "canary"  # the issuing turn's arm
    text = await replicas.metrics(1)
    assert sample(text, "tierguard_stateful_turns_total", outcome="fallback") == 1
    assert sample(text, "tierguard_unsafe_switches_total") == 0


async def test_tool_calls_and_tool_results_are_not_shadow_judged(replicas: Replicas) -> None:
    """A tool call has no text to compare, and the baseline would refuse a tool result
    for a call it did not issue: neither is shadowed (a text answer still is)."""
    await replicas.reload(split=[{"tier": "simple", "weight": 100.0}], shadow={"sampleRate": 1.0})
    conv = Conversation("sh", "u", "x", agent=True)
    conv.messages.append({"role": "user", "content": SIMPLE[0]})
    client = replicas.clients[0]
    for _ in range(3):  # tool call, tool call, text answer
        r = await client.post("/v1/chat/completions", json=conv.request_body("auto"))
        assert r.status == 200 and r.headers["x-tierguard-arm"] == "canary"
        more = conv.add_answer(await r.json())
    assert not more
    plain = {"model": "auto", "messages": [{"role": "user", "content": SIMPLE[1]}]}
    assert (await client.post("/v1/chat/completions", json=plain)).status == 200
    rt = client.app[RUNTIME]
    shadows = [t for t in rt.background if "shadow" in repr(t.get_coro())]
    await asyncio.gather(*shadows, return_exceptions=True)
    text = await replicas.metrics(0)
    assert sample(text, "tierguard_shadow_judgements_total") == 1


async def test_a_pinned_request_gets_the_upstream_ids_back_too(replicas: Replicas) -> None:
    """A client that names the model after routed turns: its tool results carry wrapped
    ids, which the named model must see unwrapped."""
    await replicas.reload(split=[{"tier": "simple", "weight": 0.0}])
    conv = Conversation("pin", "u", "x", agent=True)
    conv.messages.append({"role": "user", "content": SIMPLE[0]})
    r = await replicas.clients[0].post("/v1/chat/completions", json=conv.request_body("auto"))
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    assert conv.add_answer(await r.json())
    assert conv.messages[-1]["tool_call_id"].startswith("tgc1.big.")
    r = await replicas.clients[1].post("/v1/chat/completions", json=conv.request_body("big"))
    assert r.status == 200, await r.text()
    assert r.headers["x-tierguard-arm"] == "pinned"
