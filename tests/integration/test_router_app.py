"""The router app in-process against in-process fake providers on loopback: routing,
errors, fallback, hedging, streaming, feedback, shadow, review, reload. (The same
behaviours are exercised through a real router process and the OpenAI SDK in
test_router_process.py.)"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routerkit import COMPLEX_QUERY, SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router import decision_id
from tierguard.router.app import RUNTIME, RouterSettings, create_app, reload_text

pytestmark = pytest.mark.timeout(60)


class Env:
    def __init__(
        self,
        client: TestClient[web.Request, web.Application],
        fakes: dict[str, TestServer],
        cfg: dict[str, Any],
    ):
        self.client, self.fakes, self.cfg = client, fakes, cfg

    async def chat(self, content: str = SIMPLE_QUERY, **extra: Any) -> aiohttp.ClientResponse:
        body = {"model": "auto", "messages": [{"role": "user", "content": content}], **extra}
        return await self.client.post("/v1/chat/completions", json=body)

    async def patch(self, server: str, model: str, **fields: Any) -> None:
        fake = self.fakes[server]
        async with (
            aiohttp.ClientSession() as s,
            s.patch(str(fake.make_url(f"/admin/profile/{model}")), json=fields) as r,
        ):
            assert r.status == 200

    async def metrics(self) -> str:
        return await (await self.client.get("/metrics")).text()

    @property
    def runtime(self) -> Any:
        return self.client.app[RUNTIME]


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in an exposition (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        lab = line[len(name) + 1 : line.index("}")]
        pairs = dict(p.split("=", 1) for p in lab.split(",") if p)
        if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
async def env(tiny_classifier: Path, request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    fakes = {
        "big": TestServer(
            create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)}))
        ),
        "small": TestServer(
            create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)}))
        ),
    }
    for f in fakes.values():
        await f.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fakes["big"].make_url("/v1")),
        small_url=str(fakes["small"].make_url("/v1")),
        **overrides,
    )
    app = create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield Env(client, fakes, cfg)
    finally:
        await client.close()
        for f in fakes.values():
            await f.close()


async def test_routes_simple_and_complex_and_signs_the_id(env: Env) -> None:
    r = await env.chat(SIMPLE_QUERY, user="alice")
    assert r.status == 200
    body = await r.json()
    assert r.headers["x-tierguard-tier"] == "simple"
    assert r.headers["x-tierguard-arm"] == "control"  # weight 0: everyone on the baseline
    assert r.headers["x-tierguard-model"] == "big"
    assert body["model"] == "auto"
    assert body["tierguard_fake"]["model"] == "big-1"  # unknown fields pass through
    key = env.runtime.state.signing_key
    d = decision_id.verify(body["id"], key, now=body["created"] + 1, ttl_s=60)
    assert (d.policy, d.tier, d.arm, d.model) == ("support", "simple", "control", "big")
    r = await env.chat(COMPLEX_QUERY)
    assert (r.headers["x-tierguard-tier"], r.headers["x-tierguard-arm"]) == ("complex", "stable")
    text = await env.metrics()
    assert (
        sample(
            text,
            "tierguard_requests_total",
            tier="simple",
            arm="control",
            model="big",
            outcome="ok",
        )
        == 1
    )
    assert sample(text, "tierguard_requests_total", tier="complex", arm="stable", outcome="ok") == 1
    assert sample(text, "tierguard_tokens_total", tier="simple", kind="completion") > 0
    assert sample(text, "tierguard_cost_usd_total", tier="simple") > 0
    assert sample(text, "tierguard_classifier_duration_seconds_count") == 2


async def test_pinned_model(env: Env) -> None:
    r = await env.client.post(
        "/v1/chat/completions",
        json={"model": "small", "messages": [{"role": "user", "content": COMPLEX_QUERY}]},
    )
    assert r.status == 200
    assert (
        r.headers["x-tierguard-tier"],
        r.headers["x-tierguard-arm"],
        r.headers["x-tierguard-model"],
    ) == ("pinned", "pinned", "small")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{", 400, "invalid_json"),
        (
            json.dumps({"model": "gpt-9", "messages": [{"role": "user", "content": "x"}]}).encode(),
            404,
            "model_not_found",
        ),
        (json.dumps({"model": "auto", "messages": []}).encode(), 400, "empty_array"),
        (
            json.dumps(
                {"model": "auto", "messages": [{"role": "user", "content": "x" * 2_000_000}]}
            ).encode(),
            413,
            "request_too_large",
        ),
    ],
)
async def test_bad_input_gets_openai_errors(env: Env, body: bytes, status: int, code: str) -> None:
    r = await env.client.post(
        "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
    )
    assert r.status == status
    err = (await r.json())["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["code"] == code
    assert sample(await env.metrics(), "tierguard_invalid_requests_total", reason=code) == 1


async def test_unknown_path_and_method_are_openai_shaped(env: Env) -> None:
    r = await env.client.get("/v1/nope")
    assert r.status == 404 and (await r.json())["error"]["type"] == "not_found_error"
    r = await env.client.get("/v1/chat/completions")
    assert r.status == 405 and "error" in await r.json()


async def test_health_ready_models(env: Env) -> None:
    assert (await env.client.get("/healthz")).status == 200
    ready = await env.client.get("/readyz")
    assert ready.status == 200 and (await ready.json())["policy"] == "support"
    ids = [m["id"] for m in (await (await env.client.get("/v1/models")).json())["data"]]
    assert ids == ["auto", "big", "small"]


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({"rate_limit_rate": 1.0}, "rate_limited"),
        ({"error_rate": 1.0}, "server_error"),
    ],
)
async def test_fallback_on_429_and_5xx(env: Env, fault: dict[str, float], reason: str) -> None:
    await env.patch("small", "small-1", **fault)
    r = await env.chat(user="bob")
    assert r.status == 200
    assert (r.headers["x-tierguard-arm"], r.headers["x-tierguard-model"]) == ("canary", "big")
    text = await env.metrics()
    assert (
        sample(text, "tierguard_requests_total", arm="canary", model="big", outcome="escalated")
        == 1
    )
    assert sample(text, "tierguard_upstream_errors_total", model="small", reason=reason) == 1
    assert (
        sample(
            text, "tierguard_escalations_total", from_model="small", to_model="big", reason="error"
        )
        == 1
    )


@pytest.mark.parametrize(
    "env",
    [
        {
            "split": [{"tier": "simple", "weight": 100}],
            "routes": [
                {
                    "tier": "simple",
                    "baseline": "big",
                    "candidate": "small",
                    "fallbacks": ["big"],
                    "latencyBudget": "200ms",
                },
                {"tier": "complex", "baseline": "big"},
            ],
        }
    ],
    indirect=True,
)
async def test_hedge_after_latency_budget(env: Env) -> None:
    await env.patch("small", "small-1", latency_median_s=20.0)
    r = await env.chat(user="carol")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    text = await env.metrics()
    assert sample(text, "tierguard_hedges_total", arm="canary", outcome="hedge") == 1
    assert sample(text, "tierguard_escalations_total", reason="budget") == 1
    assert sample(text, "tierguard_requests_total", outcome="escalated") == 1


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_timeout_falls_back(env: Env) -> None:
    # small hangs; its 5s per-model timeout is longer than the 2s budget, so the hedge wins
    await env.patch("small", "small-1", hang_rate=1.0)
    r = await env.chat(user="dan")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_all_fail_is_502_naming_attempts(env: Env) -> None:
    # (the last model's 429 would be passed on as a 429: test_router_requests.py)
    await env.patch("small", "small-1", rate_limit_rate=1.0)
    await env.patch("big", "big-1", error_rate=1.0)
    r = await env.chat(user="erin")
    assert r.status == 502
    err = (await r.json())["error"]
    assert err["code"] == "upstream_failed"
    assert "small: rate_limited" in err["message"] and "big: server_error" in err["message"]
    assert sample(await env.metrics(), "tierguard_requests_total", outcome="error") == 1


@pytest.mark.parametrize("env", [{"server": {"requestDeadline": "300ms"}}], indirect=True)
async def test_deadline_is_504(env: Env) -> None:
    await env.patch("big", "big-1", hang_rate=1.0)
    r = await env.chat(COMPLEX_QUERY)
    assert r.status == 504 and (await r.json())["error"]["code"] == "deadline_exceeded"


async def test_streaming_forwards_chunks_with_our_id(env: Env) -> None:
    r = await env.chat(stream=True)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len({c["id"] for c in chunks}) == 1 and chunks[0]["id"].startswith("chatcmpl-")
    assert all("usage" not in c for c in chunks)  # the client did not ask for usage
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert len(text.split()) > 5
    m = await env.metrics()
    # streamUsage is off: the router added no stream_options, so no usage came back
    # (test_router_streaming.py covers a model configured with streamUsage)
    assert sample(m, "tierguard_tokens_total", kind="completion") == 0
    assert sample(m, "tierguard_time_to_first_token_seconds_count") == 1


async def test_streaming_usage_when_asked(env: Env) -> None:
    r = await env.chat(stream=True, stream_options={"include_usage": True})
    events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
    assert json.loads(events[-2])["usage"]["completion_tokens"] > 0


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_stream_failing_before_first_chunk_falls_back(env: Env) -> None:
    await env.patch("small", "small-1", error_rate=1.0)
    r = await env.chat(stream=True, user="ian")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
    assert events[-1] == "[DONE]"
    # complex/stable chain is just [big]: nothing to fall back to → 502 before any byte
    await env.patch("big", "big-1", error_rate=1.0)
    r2 = await env.chat(COMPLEX_QUERY, stream=True)
    assert r2.status == 502 and (await r2.json())["error"]["code"] == "upstream_failed"


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_stream_cut_after_first_chunk_ends_with_error_event(env: Env) -> None:
    await env.patch("small", "small-1", stream_fail_rate=1.0)
    r = await env.chat(stream=True, user="fay")
    assert r.status == 200
    events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
    last = json.loads(events[-1])
    assert last["error"]["type"] == "upstream_error"
    assert sample(await env.metrics(), "tierguard_requests_total", outcome="error") == 1


async def test_feedback_attributed_and_forgeries_refused(env: Env) -> None:
    body = await (await env.chat(user="gus")).json()
    r = await env.client.post("/v1/feedback", json={"id": body["id"], "rating": "down"})
    assert r.status == 200 and (await r.json())["tier"] == "simple"
    forged = decision_id.sign(
        decision_id.Decision("support", "simple", "canary", "small", body["created"], "x"),
        b"not-the-key",
    )
    r = await env.client.post("/v1/feedback", json={"id": forged, "rating": "up"})
    assert r.status == 400 and (await r.json())["error"]["code"] == "feedback_bad_signature"
    other = decision_id.sign(
        decision_id.Decision("other", "simple", "canary", "small", body["created"], "x"),
        env.runtime.state.signing_key,
    )
    r = await env.client.post("/v1/feedback", json={"id": other, "rating": "up"})
    assert (await r.json())["error"]["code"] == "feedback_wrong_policy"
    r = await env.client.post("/v1/feedback", json={"id": body["id"], "rating": "meh"})
    assert r.status == 400 and (await r.json())["error"]["param"] == "rating"
    m = await env.metrics()
    assert (
        sample(
            m, "tierguard_feedback_total", tier="simple", arm="control", model="big", rating="down"
        )
        == 1
    )
    assert sample(m, "tierguard_feedback_rejected_total", reason="bad_signature") == 1
    assert sample(m, "tierguard_feedback_rejected_total", reason="wrong_policy") == 1


@pytest.mark.parametrize(
    "env",
    [{"split": [{"tier": "simple", "weight": 100}], "shadow": {"sampleRate": 1.0}}],
    indirect=True,
)
async def test_shadow_judges_canary_against_baseline(env: Env) -> None:
    await env.patch("small", "small-1", default_quality=0.0)  # the canary always answers badly
    for i in range(4):
        assert (await env.chat(f"{SIMPLE_QUERY} {i}", user=f"u{i}")).status == 200
    for _ in range(100):
        if sample(await env.metrics(), "tierguard_shadow_judgements_total") >= 4:
            break
        await asyncio.sleep(0.05)
    m = await env.metrics()
    assert (
        sample(
            m,
            "tierguard_shadow_judgements_total",
            tier="simple",
            arm="canary",
            model="small",
            verdict="disagree",
        )
        == 4
    )
    assert sample(m, "tierguard_shadow_cost_usd_total", model="big") > 0


async def test_review_sample_is_stratified(env: Env) -> None:
    for i in range(3):
        await env.chat(f"{SIMPLE_QUERY} {i}")
    await env.chat(COMPLEX_QUERY)
    lines = (await (await env.client.get("/admin/review-sample")).text()).splitlines()
    strata = sorted(
        (json.loads(x)["stratum"]["tier"], json.loads(x)["stratum"]["arm"]) for x in lines
    )
    assert strata == [
        ("complex", "stable"),
        ("simple", "control"),
        ("simple", "control"),
        ("simple", "control"),
    ]
    assert all("prompt" not in json.loads(x) for x in lines)  # logPrompts is off


async def test_reload_applies_weight_and_refuses_invalid(env: Env) -> None:
    rt = env.runtime
    assert (await env.chat(user="hal")).headers["x-tierguard-arm"] == "control"
    new = {**env.cfg, "split": [{"tier": "simple", "weight": 100}], "revision": "r2"}
    assert await reload_text(rt, json.dumps(new))
    assert (await env.chat(user="hal")).headers["x-tierguard-arm"] == "canary"
    assert not await reload_text(rt, json.dumps({**new, "routes": []}))
    assert not await reload_text(rt, "{{{ not yaml")
    assert rt.state.config.revision == "r2"
    m = await env.metrics()
    assert sample(m, "tierguard_config_reloads_total", outcome="error") == 2
    assert sample(m, "tierguard_canary_weight_percent", tier="simple") == 100


@pytest.mark.parametrize(
    "env", [{"server": {"clientApiKeys": {"env": "TG_TEST_KEYS"}}}], indirect=True
)
async def test_client_api_keys(env: Env) -> None:
    r = await env.chat()
    assert r.status == 401 and (await r.json())["error"]["type"] == "authentication_error"
    r = await env.client.post(
        "/v1/chat/completions",
        headers={"Authorization": "Bearer k2"},
        json={"model": "auto", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status == 200


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TG_TEST_KEYS", "k1\nk2\n")


async def test_classifier_failure_routes_to_catch_all_tier(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(text: Any) -> None:
        raise RuntimeError("onnxruntime exploded")

    monkeypatch.setattr(env.runtime.state.classifier, "classify", broken)
    monkeypatch.setattr(env.runtime.state.classifier, "classify_batch", broken)
    r = await env.chat(SIMPLE_QUERY)
    assert r.status == 200 and r.headers["x-tierguard-tier"] == "complex"


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_upstream_4xx_escalates_then_passes_through(env: Env) -> None:
    await env.patch("small", "small-1", reject_params=["logprobs"])
    r = await env.chat(user="jo", logprobs=True)
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="client_error") == 1
    assert sample(m, "tierguard_requests_total", arm="canary", outcome="escalated") == 1
    # the last model of the chain refusing it: the upstream's 400 reaches the client
    r = await env.client.post(
        "/v1/chat/completions",
        json={"model": "small", "logprobs": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status == 400
    err = (await r.json())["error"]
    assert err["code"] == "upstream_rejected" and "logprobs" in err["message"]


@pytest.mark.parametrize(
    "env",
    [
        {
            "split": [{"tier": "simple", "weight": 100}],
            "shadow": {"sampleRate": 1.0, "judge": {"type": "LLM", "model": "big"}},
        }
    ],
    indirect=True,
)
async def test_llm_judge(env: Env) -> None:
    await env.chat(f"{SIMPLE_QUERY} a", user="k1")  # both answers good: agree
    await env.patch("small", "small-1", default_quality=0.0)
    await env.chat(f"{SIMPLE_QUERY} b", user="k2")  # canary answer bad: disagree
    for _ in range(100):
        if sample(await env.metrics(), "tierguard_shadow_judgements_total") >= 2:
            break
        await asyncio.sleep(0.05)
    m = await env.metrics()
    assert sample(m, "tierguard_shadow_judgements_total", verdict="agree") == 1
    assert sample(m, "tierguard_shadow_judgements_total", verdict="disagree") == 1


@pytest.mark.parametrize("env", [{"split": [{"tier": "simple", "weight": 100}]}], indirect=True)
async def test_stream_stalling_mid_way_ends_with_error_event(env: Env) -> None:
    # first content at once, then 10 s between chunks: past small's 5 s per-read timeout
    await env.patch("small", "small-1", inter_chunk_s=10.0)
    r = await env.chat(stream=True, user="kim")
    events = [ln[6:] for ln in (await r.text()).splitlines() if ln.startswith("data: ")]
    assert json.loads(events[-1])["error"]["type"] == "upstream_error"


@pytest.fixture
def decision_log_path(tmp_path: Path) -> Path:
    return tmp_path / "decisions.jsonl"


async def test_decision_log_lines(tiny_classifier: Path, decision_log_path: Path) -> None:
    fake = TestServer(create_fake_app())
    await fake.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fake.make_url("/v1")),
        small_url=str(fake.make_url("/v1")),
        observability={"decisionLog": str(decision_log_path)},
    )
    client = TestClient(
        TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
    )
    await client.start_server()
    try:
        body = {
            "model": "auto",
            "user": "alice@example.com",
            "messages": [{"role": "user", "content": "secret prompt " + SIMPLE_QUERY}],
        }
        r = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": "req-42"})
        assert r.status == 200
        client.app[RUNTIME].decision_log.flush()
    finally:
        await client.close()
        await fake.close()
    text = decision_log_path.read_text()
    (line,) = [json.loads(x) for x in text.splitlines()]
    assert line["request_id"] == "req-42" and line["tier"] == "simple"
    assert line["arm"] == "control" and line["model"] == "big" and line["outcome"] == "ok"
    assert set(line["probabilities"]) == {"simple", "complex"}
    assert line["tokens"]["completion"] > 0 and line["cost_usd"] > 0
    assert line["user_hash"] and "alice" not in text and "secret prompt" not in text


async def test_pairwise_judge_counts_verdicts_and_logs_them(
    tiny_classifier: Path, decision_log_path: Path
) -> None:
    """Judge mode Pairwise against the fake provider's judge: the verdicts of the canary's
    answers (better/worse/tie, inconsistent for a position-biased judge, error for a
    stalled one) in shadow_pairwise_total and in the decision log."""
    perfect = ModelBehaviour(latency_median_s=0.0, default_quality=1.0)
    fake = TestServer(
        create_fake_app(FakeProfile(models={"big-1": perfect, "small-1": perfect, "*": perfect}))
    )
    await fake.start_server()
    url = str(fake.make_url("/v1"))
    cfg = router_config(
        tiny_classifier,
        big_url=url,
        small_url=url,
        weight=100,
        shadow={"sampleRate": 1.0, "judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}},
        observability={"decisionLog": str(decision_log_path)},
    )
    cfg["models"].append(
        {"name": "judge", "baseURL": url, "upstreamModel": "judge-1", "timeout": "1s"}
    )
    client = TestClient(
        TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
    )
    await client.start_server()

    async def patch(model: str, **fields: Any) -> None:
        async with (
            aiohttp.ClientSession() as s,
            s.patch(str(fake.make_url(f"/admin/profile/{model}")), json=fields) as r,
        ):
            assert r.status == 200

    async def ask(n: int, text: str) -> str:
        body = {"model": "auto", "messages": [{"role": "user", "content": text}]}
        r = await client.post("/v1/chat/completions", json=body, headers={"x-request-id": text})
        assert r.status == 200 and r.headers["x-tierguard-arm"] == "canary"
        for _ in range(200):
            m = await (await client.get("/metrics")).text()
            if sample(m, "tierguard_shadow_pairwise_total") >= n:
                return m
            await asyncio.sleep(0.05)
        raise AssertionError(f"fewer than {n} pairwise judgements")

    try:
        await ask(1, f"{SIMPLE_QUERY} one")  # both answers good: tie
        await patch("small-1", default_quality=0.0)
        await ask(2, f"{SIMPLE_QUERY} two")  # the canary's answer is bad: worse
        await patch("judge-1", judge_position_bias=1.0)
        await ask(3, f"{SIMPLE_QUERY} three")  # always "[[A]]": changes with the order
        await patch("judge-1", judge_position_bias=0.0, hang_rate=1.0)
        m = await ask(4, f"{SIMPLE_QUERY} four")  # the judge stalls past its 1s timeout
        client.app[RUNTIME].decision_log.flush()
    finally:
        await client.close()
        await fake.close()
    for verdict in ("tie", "worse", "inconsistent", "error"):
        assert (
            sample(
                m,
                "tierguard_shadow_pairwise_total",
                tier="simple",
                arm="canary",
                model="small",
                verdict=verdict,
            )
            == 1
        ), verdict
    assert sample(m, "tierguard_shadow_pairwise_total", verdict="better") == 0
    assert sample(m, "tierguard_shadow_judgements_total") == 0  # not the agreement metric
    lines = [json.loads(x) for x in decision_log_path.read_text().splitlines()]
    shadows = {x["request_id"]: x for x in lines if x.get("type") == "shadow"}
    assert {k.rsplit(" ", 1)[1]: v["verdict"] for k, v in shadows.items()} == {
        "one": "tie",
        "two": "worse",
        "three": "inconsistent",
        "four": "error",
    }
    assert all(v["judge"] == "pairwise" and v["baseline"] == "big" for v in shadows.values())


async def test_review_sample_file_written_at_shutdown(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    fake = TestServer(create_fake_app())
    await fake.start_server()
    out = tmp_path / "review.jsonl"
    cfg = router_config(
        tiny_classifier,
        big_url=str(fake.make_url("/v1")),
        small_url=str(fake.make_url("/v1")),
        split=[{"tier": "simple", "weight": 50}],
        observability={
            "decisionLog": None,
            "reviewSampleSize": 3,
            "reviewSamplePath": str(out),
            "logPrompts": True,
        },
    )
    client = TestClient(
        TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
    )
    await client.start_server()
    try:
        for i in range(40):
            r = await client.post(
                "/v1/chat/completions",
                json={
                    "model": "auto",
                    "user": f"u{i}",
                    "messages": [{"role": "user", "content": f"{SIMPLE_QUERY} {i}"}],
                },
            )
            assert r.status == 200
    finally:
        await client.close()
        await fake.close()
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    per = Counter((r["stratum"]["tier"], r["stratum"]["arm"]) for r in rows)
    assert per == {("simple", "canary"): 3, ("simple", "control"): 3}
    seen = {(r["stratum"]["arm"]): r["stratum"]["seen"] for r in rows}
    assert seen["canary"] + seen["control"] == 40
    assert all(r["prompt"].startswith(SIMPLE_QUERY) and r["answer"] for r in rows)


async def test_two_replicas_agree_on_arms_and_accept_each_others_ids(
    tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TG_SIGNING_KEY", "shared-secret-from-a-Secret")
    fake = TestServer(create_fake_app())
    await fake.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fake.make_url("/v1")),
        small_url=str(fake.make_url("/v1")),
        split=[{"tier": "simple", "weight": 50}],
        feedback={"signingKey": {"env": "TG_SIGNING_KEY"}},
    )
    replicas = [
        TestClient(TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))))
        for _ in range(2)
    ]
    for c in replicas:
        await c.start_server()
    try:
        arms = []
        for user in [f"user-{i}" for i in range(20)]:
            seen = set()
            for c in replicas:
                r = await c.post(
                    "/v1/chat/completions",
                    json={
                        "model": "auto",
                        "user": user,
                        "messages": [{"role": "user", "content": SIMPLE_QUERY}],
                    },
                )
                seen.add(r.headers["x-tierguard-arm"])
                last_id = (await r.json())["id"]
            assert len(seen) == 1  # the same user gets the same arm on both replicas
            arms += list(seen)
            # feedback on the OTHER replica than the one that answered last
            fb = await replicas[0].post("/v1/feedback", json={"id": last_id, "rating": "up"})
            assert fb.status == 200
        assert {"canary", "control"} <= set(arms)
    finally:
        for c in replicas:
            await c.close()
        await fake.close()
