"""Streaming faults of real upstreams, against the router app and the project's fake
providers (in-process, on loopback): an error event before any content, a stream that
ends early without saying so, chunk ids that change, very long SSE lines, and upstreams
that refuse ``stream_options``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_router_app import Env, sample
from test_router_app import env as env

from routerkit import COMPLEX_QUERY
from routerkit import tiny_classifier as tiny_classifier
from tierguard.router import decision_id
from tierguard.router.decision_log import DecisionLog

pytestmark = pytest.mark.timeout(60)

CANARY = {"split": [{"tier": "simple", "weight": 100}]}


def events(text: str) -> list[str]:
    return [ln[6:] for ln in text.splitlines() if ln.startswith("data: ")]


def chunks(text: str) -> list[dict[str, Any]]:
    return [json.loads(e) for e in events(text) if e != "[DONE]"]


def decisions(env: Env, path: Path) -> list[dict[str, Any]]:
    env.runtime.decision_log.flush()
    return [json.loads(x) for x in path.read_text().splitlines()]


def log_decisions(env: Env, tmp_path: Path) -> Path:
    path = tmp_path / "decisions.jsonl"
    env.runtime.decision_log = DecisionLog(str(path))
    return path


# --------------------------------------------------------------------------- item 1


@pytest.mark.parametrize("env", [CANARY], indirect=True)
@pytest.mark.parametrize("after_role", [True, False])
async def test_error_event_before_content_falls_back(env: Env, after_role: bool) -> None:
    """200 + an error event before any content is a failed attempt: the next model of
    the chain answers, and the canary's failure is counted as an escalation."""
    await env.patch("small", "small-1", stream_error_rate=1.0, stream_role_chunk=after_role)
    r = await env.chat(stream=True, user="ann")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    evs = events(await r.text())
    assert evs[-1] == "[DONE]" and not any("error" in json.loads(e) for e in evs[:-1])
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="stream_error") == 1
    assert (
        sample(m, "tierguard_escalations_total", from_model="small", to_model="big", reason="error")
        == 1
    )
    assert sample(m, "tierguard_requests_total", arm="canary", outcome="escalated") == 1


async def test_error_event_before_content_with_no_fallback_is_an_error_status(env: Env) -> None:
    """Nothing has reached the client yet, so the client gets a proper error status (not
    200 plus an error event)."""
    await env.patch("big", "big-1", stream_error_rate=1.0)
    r = await env.chat(COMPLEX_QUERY, stream=True)  # complex → [big]: no fallback
    assert r.status == 502
    assert (await r.json())["error"]["code"] == "upstream_failed"
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", tier="complex", outcome="error") == 1


# --------------------------------------------------------------------------- item 2


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_truncated_stream_is_an_error(env: Env, tmp_path: Path) -> None:
    """A stream that ends cleanly after some content but with no finish_reason and no
    [DONE] was cut short: the client gets an OpenAI error event, and the metrics and the
    decision log count it as an error of that model (so ErrorRate gates see it)."""
    path = log_decisions(env, tmp_path)
    await env.patch("small", "small-1", stream_truncate_rate=1.0)
    r = await env.chat(stream=True, user="bea")
    assert r.status == 200
    evs = events(await r.text())
    last = json.loads(evs[-1])
    assert last["error"]["type"] == "upstream_error" and last["error"]["code"] == "truncated"
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", arm="canary", model="small", outcome="error") == 1
    assert sample(m, "tierguard_requests_total", outcome="ok") == 0
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="truncated") == 1
    (line,) = decisions(env, path)
    assert line["outcome"] == "error" and line["error"] == "truncated"


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_finished_stream_without_done_is_ok_and_completed(env: Env) -> None:
    """An upstream that ends after its finish_reason without [DONE] answered in full:
    the client gets the [DONE] it expects, and nothing is counted as an error."""
    await env.patch("small", "small-1", stream_omit_done=True)
    r = await env.chat(stream=True, user="ned", stream_options={"include_usage": True})
    evs = events(await r.text())
    assert evs[-1] == "[DONE]" and json.loads(evs[-2])["usage"]["completion_tokens"] > 0
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", model="small", outcome="ok") == 1
    assert sample(m, "tierguard_upstream_errors_total") == 0


async def test_complete_stream_is_ok(env: Env) -> None:
    r = await env.chat(stream=True)
    assert events(await r.text())[-1] == "[DONE]"
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", outcome="ok") == 1
    assert sample(m, "tierguard_upstream_errors_total") == 0


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_error_event_mid_stream_counts_as_upstream_error(env: Env, tmp_path: Path) -> None:
    path = log_decisions(env, tmp_path)
    await env.patch("small", "small-1", stream_error_rate=1.0, stream_error_after_words=3)
    r = await env.chat(stream=True, user="cy")
    evs = events(await r.text())
    assert json.loads(evs[-1])["error"]["type"] == "upstream_error"
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", model="small", outcome="error") == 1
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="stream_error") == 1
    assert decisions(env, path)[0]["outcome"] == "error"


# --------------------------------------------------------------------------- item 3


@pytest.mark.parametrize("env", [CANARY, {**CANARY, "shadow": {"sampleRate": 1.0}}], indirect=True)
async def test_every_chunk_carries_the_signed_id(env: Env) -> None:
    """Upstreams that change the id on every chunk: the client still sees one id, the
    signed decision id, on every chunk (whichever chunk it takes the id from, feedback
    works). Both the byte-level path and the parse path (shadow sampling) are covered."""
    await env.patch("small", "small-1", stream_vary_ids=True)
    r = await env.chat(stream=True, user="dee", stream_options={"include_usage": True})
    got = chunks(await r.text())
    assert len(got) > 5 and got[-1].get("usage")
    ids = {c["id"] for c in got}
    assert len(ids) == 1
    (did,) = ids
    d = decision_id.verify(did, env.runtime.state.signing_key, now=got[0]["created"], ttl_s=60)
    assert (d.tier, d.arm, d.model) == ("simple", "canary", "small")
    fb = await env.client.post("/v1/feedback", json={"id": got[-1]["id"], "rating": "up"})
    assert fb.status == 200


# --------------------------------------------------------------------------- item 4


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_long_sse_line_is_relayed(env: Env) -> None:
    """One SSE event far above aiohttp's default line limit (and the ~512 KiB that broke
    before) goes through whole."""
    await env.patch("small", "small-1", big_word_bytes=3 << 20)
    r = await env.chat(stream=True, user="eve")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "small"
    got = chunks(await r.text())
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in got if c["choices"])
    assert len(text) > 3 << 20
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", model="small", outcome="ok") == 1


@pytest.mark.parametrize(
    "env", [{**CANARY, "server": {"maxResponseBytes": 1 << 20}}], indirect=True
)
async def test_event_over_the_configured_limit_is_a_clear_error(env: Env) -> None:
    await env.patch("small", "small-1", big_word_bytes=2 << 20)
    r = await env.chat(stream=True, user="fox")
    evs = events(await r.text())
    err = json.loads(evs[-1])["error"]
    assert err["code"] == "response_too_large" and "server.maxResponseBytes" in err["message"]
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="protocol") == 1
    assert sample(m, "tierguard_requests_total", model="small", outcome="error") == 1


@pytest.mark.parametrize("env", [{**CANARY, "server": {"maxResponseBytes": 65536}}], indirect=True)
async def test_json_answer_over_the_limit_fails_the_attempt(env: Env) -> None:
    await env.patch("small", "small-1", big_word_bytes=100_000)
    r = await env.chat(user="gil")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"  # fell back
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="protocol") == 1


# --------------------------------------------------------------------------- item 6


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_no_stream_options_unless_asked_or_configured(env: Env) -> None:
    """A strict upstream that refuses ``stream_options``: the router sends it only when
    the client did, so pinned and canary streams both work and nothing is escalated."""
    await env.patch("small", "small-1", reject_params=["stream_options"])
    await env.patch("big", "big-1", reject_params=["stream_options"])
    r = await env.client.post(
        "/v1/chat/completions",
        json={"model": "small", "stream": True, "messages": [{"role": "user", "content": "x"}]},
    )
    assert r.status == 200 and events(await r.text())[-1] == "[DONE]"
    r = await env.chat(stream=True, user="hal")
    assert r.status == 200 and r.headers["x-tierguard-model"] == "small"
    assert events(await r.text())[-1] == "[DONE]"
    m = await env.metrics()
    assert sample(m, "tierguard_escalations_total") == 0
    assert sample(m, "tierguard_upstream_errors_total") == 0
    assert sample(m, "tierguard_requests_total", arm="canary", outcome="ok") == 1


@pytest.mark.parametrize("env", [{**CANARY, "model_extra": {"streamUsage": True}}], indirect=True)
async def test_configured_stream_usage_counts_tokens_and_a_refusal_is_not_a_signal(
    env: Env,
) -> None:
    """``streamUsage: true`` asks the upstream for the usage chunk (tokens and cost of
    streamed answers are counted, the chunk is not shown to a client that did not ask);
    if the upstream refuses the router's own addition anyway, the same model is asked
    again without it: no upstream error, no escalation, no canary penalty."""
    r = await env.chat(stream=True, user="ida")
    got = chunks(await r.text())
    assert all("usage" not in c for c in got)
    m = await env.metrics()
    assert sample(m, "tierguard_tokens_total", model="small", kind="completion") > 0
    await env.patch("small", "small-1", reject_params=["stream_options"])
    for user in ("ida", "jon"):
        r = await env.chat(stream=True, user=user)
        assert r.status == 200 and r.headers["x-tierguard-model"] == "small"
        assert events(await r.text())[-1] == "[DONE]"
    m = await env.metrics()
    assert sample(m, "tierguard_escalations_total") == 0
    assert sample(m, "tierguard_upstream_errors_total") == 0
    assert sample(m, "tierguard_requests_total", arm="canary", outcome="ok") == 3


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_client_sent_stream_options_refused_is_the_models_failure(env: Env) -> None:
    """What the client itself sent is the client's request: a canary that refuses it
    escalates to the baseline as any other refused parameter does."""
    await env.patch("small", "small-1", reject_params=["stream_options"])
    r = await env.chat(stream=True, user="kai", stream_options={"include_usage": True})
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    got = chunks(await r.text())
    assert got[-1]["usage"]["completion_tokens"] > 0
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="client_error") == 1


@pytest.mark.parametrize("env", [{**CANARY, "model_extra": {"streamUsage": True}}], indirect=True)
async def test_a_refused_client_parameter_does_not_turn_stream_usage_off(env: Env) -> None:
    """The retry without the router's addition is refused too when the client's own
    parameter is the problem: that is the model's refusal (escalation as usual), and the
    model keeps getting the usage request afterwards."""
    await env.patch("small", "small-1", reject_params=["logprobs"])
    r = await env.chat(stream=True, user="oz", logprobs=True)
    assert r.status == 200 and r.headers["x-tierguard-model"] == "big"
    await r.text()
    assert env.runtime.state.pool.clients["small"].refuses_additions is False
    r = await env.chat(stream=True, user="oz")
    assert r.headers["x-tierguard-model"] == "small"
    await r.text()
    m = await env.metrics()
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="client_error") == 1
    assert sample(m, "tierguard_tokens_total", model="small", kind="completion") > 0
