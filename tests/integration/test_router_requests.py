"""What clients send and get back, against the router app and the project's fake
providers (in-process, on loopback): rate limits passed on with Retry-After, malformed
input of every kind (a hypothesis fuzz of the whole request schema: no input gives a
5xx), and requests with nothing to classify."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_router_app import Env, sample
from test_router_app import _keys as _keys  # TG_TEST_KEYS for the client-key test
from test_router_app import env as env

from routerkit import COMPLEX_QUERY, SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router.app import RouterSettings, create_app
from tierguard.router.decision_log import DecisionLog

pytestmark = pytest.mark.timeout(120)

CANARY = {"split": [{"tier": "simple", "weight": 100}]}
ERROR_KEYS = {"message", "type", "param", "code"}


async def post(env: Env, body: dict[str, Any]) -> Any:
    return await env.client.post("/v1/chat/completions", json=body)


# --------------------------------------------------------------------------- item 5


@pytest.mark.parametrize("stream", [False, True])
async def test_pinned_429_reaches_the_client_with_retry_after(env: Env, stream: bool) -> None:
    await env.patch("small", "small-1", rate_limit_rate=1.0, retry_after="7")
    r = await post(
        env,
        {"model": "small", "stream": stream, "messages": [{"role": "user", "content": "hi"}]},
    )
    assert r.status == 429
    assert r.headers["Retry-After"] == "7"
    err = (await r.json())["error"]
    assert set(err) == ERROR_KEYS and err["code"] == "rate_limit_exceeded"
    assert "small" in err["message"]
    m = await env.metrics()
    assert sample(m, "tierguard_requests_total", tier="pinned", outcome="error") == 1
    assert sample(m, "tierguard_upstream_errors_total", model="small", reason="rate_limited") == 1
    assert sample(m, "tierguard_invalid_requests_total") == 0  # not the client's fault


@pytest.mark.parametrize("env", [CANARY], indirect=True)
async def test_last_models_429_is_passed_on(env: Env) -> None:
    """The chain's last model decides: its 429 (and Retry-After) reaches the client;
    the message still names every attempt."""
    await env.patch("small", "small-1", error_rate=1.0)
    await env.patch("big", "big-1", rate_limit_rate=1.0, retry_after="30")
    r = await env.chat(user="lou")
    assert r.status == 429 and r.headers["Retry-After"] == "30"
    err = (await r.json())["error"]
    assert "small: server_error" in err["message"] and "big: rate_limited" in err["message"]
    # a 429 without Retry-After is still a 429 (nothing invented)
    await env.patch("big", "big-1", retry_after=None)
    r = await env.chat(user="lou")
    assert r.status == 429 and "Retry-After" not in r.headers


# --------------------------------------------------------------------------- item 7


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (
            {"model": "auto", "user": "\ud83d", "messages": [{"role": "user", "content": "x"}]},
            "user",
        ),
        ({"model": "auto", "messages": [{"role": "user", "content": "a \udc00 b"}]}, None),
        (
            {
                "model": "auto",
                "metadata": {"k\ud800": "v"},
                "messages": [{"role": "user", "content": "x"}],
            },
            None,
        ),
        ({"model": "\udfff", "messages": [{"role": "user", "content": "x"}]}, "model"),
    ],
)
async def test_lone_surrogates_are_a_400(env: Env, body: dict[str, Any], param: str | None) -> None:
    raw = json.dumps(body).encode()  # ensure_ascii: the lone surrogate travels as \\udXXX
    r = await env.client.post(
        "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status == 400
    err = (await r.json())["error"]
    assert set(err) == ERROR_KEYS and err["code"] == "invalid_unicode"
    if param is not None:
        assert err["param"] == param
    m = await env.metrics()
    assert sample(m, "tierguard_invalid_requests_total", reason="invalid_unicode") == 1


async def test_a_valid_surrogate_pair_is_fine(env: Env) -> None:
    raw = b'{"model":"auto","user":"\\ud83d\\ude00","messages":[{"role":"user","content":"hi"}]}'
    r = await env.client.post(
        "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status == 200


async def test_huge_number_is_a_400(env: Env) -> None:
    raw = b'{"model":"auto","max_tokens":' + b"9" * 5000 + b',"messages":[]}'
    r = await env.client.post(
        "/v1/chat/completions", data=raw, headers={"Content-Type": "application/json"}
    )
    assert r.status == 400 and (await r.json())["error"]["code"] == "invalid_json"


async def _raw_request(env: Env, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request written byte by byte (headers a client library would refuse)."""
    host, port = env.client.host, env.client.port
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode())
    writer.write(body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


@pytest.mark.parametrize(
    "header",
    [b"x-tierguard-user: \xff\xfe", b"x-request-id: \xc3", b"Authorization: Bearer \xff"],
)
async def test_non_utf8_headers_are_not_a_5xx(env: Env, header: bytes) -> None:
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n" + header + b"\r\n"
    )
    status, payload = await _raw_request(env, head, body)
    assert status == 200, payload


@pytest.mark.parametrize(
    "env", [{"server": {"clientApiKeys": {"env": "TG_TEST_KEYS"}}}], indirect=True
)
async def test_non_utf8_api_key_is_a_401(env: Env) -> None:
    body = json.dumps({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}).encode()
    head = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer k1\xff\r\n"
    )
    status, payload = await _raw_request(env, head, body)
    assert status == 401 and json.loads(payload)["error"]["type"] == "authentication_error"


# the fuzz ---------------------------------------------------------------------

SURROGATES = st.sampled_from(["\ud83d", "\ude00", "\udfff", "\ud800"])
TEXT = st.text(st.characters(exclude_categories=[]) | SURROGATES, max_size=12)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda c: st.lists(c, max_size=3) | st.dictionaries(TEXT, c, max_size=3),
    max_leaves=8,
)
PART = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["text", "image_url", "input_audio"]) | JSON,
        "text": TEXT | JSON,
        "image_url": st.fixed_dictionaries({"url": TEXT}) | JSON,
    },
)
ROLES = st.sampled_from(["system", "developer", "user", "assistant", "tool"])
# well-formed messages (so most requests get past validation into the request path) ...
GOOD_MESSAGE = st.fixed_dictionaries(
    {"role": ROLES, "content": TEXT | st.lists(PART, min_size=1, max_size=3)},
    optional={"name": TEXT, "tool_call_id": TEXT},
)
# ... and anything at all where a message goes
ANY_MESSAGE = st.fixed_dictionaries(
    {},
    optional={
        "role": ROLES | JSON,
        "content": TEXT | st.lists(PART | JSON, max_size=3) | JSON,
        "name": TEXT,
        "tool_calls": JSON,
        "tool_call_id": TEXT,
    },
)
OPTIONAL_PARAMS = {
    "stream": st.booleans() | JSON,
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": JSON}) | JSON,
    "user": TEXT | JSON,
    "n": st.integers(min_value=-1, max_value=3) | JSON,
    "temperature": st.floats() | JSON,
    "max_tokens": JSON,
    "metadata": JSON,
    "tools": JSON,
    "response_format": JSON,
}
WELL_FORMED = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["auto", "support", "big", "small"]),
        "messages": st.lists(GOOD_MESSAGE, min_size=1, max_size=3),
    },
    optional={
        "stream": st.booleans(),
        "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
        "user": TEXT,
        **{
            k: v
            for k, v in OPTIONAL_PARAMS.items()
            if k not in ("stream", "stream_options", "user")
        },
    },
)
ANYTHING = st.fixed_dictionaries(
    {},
    optional={
        "model": st.sampled_from(["auto", "support", "big", "small"]) | TEXT | JSON,
        "messages": st.lists(ANY_MESSAGE | JSON, max_size=4) | JSON,
        **OPTIONAL_PARAMS,
    },
)
REQUEST = st.one_of(
    WELL_FORMED,
    st.tuples(WELL_FORMED, st.dictionaries(TEXT, JSON, max_size=2)).map(lambda t: {**t[1], **t[0]}),
    ANYTHING,
    JSON,
)


@pytest.mark.timeout(600)  # hypothesis may shrink a failure for a while
def test_fuzzed_requests_never_get_a_5xx(tiny_classifier: Path) -> None:
    """Any JSON (and any bytes) sent to the chat endpoint gets a 2xx or an OpenAI-shaped
    4xx, never a 5xx; every 4xx the client caused is counted."""
    loop = asyncio.new_event_loop()
    fake = TestServer(
        create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)}))
    )
    state: dict[str, Any] = {}

    async def start() -> None:
        await fake.start_server()
        cfg = router_config(
            tiny_classifier,
            big_url=str(fake.make_url("/v1")),
            small_url=str(fake.make_url("/v1")),
            split=[{"tier": "simple", "weight": 50}],
            shadow={"sampleRate": 0.5},
        )
        client = TestClient(
            TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
        )
        await client.start_server()
        state["client"] = client

    async def send(data: bytes) -> tuple[int, bytes, str]:
        client: TestClient[web.Request, web.Application] = state["client"]
        r = await client.post(
            "/v1/chat/completions", data=data, headers={"Content-Type": "application/json"}
        )
        return r.status, await r.read(), r.headers.get("Content-Type", "")

    async def invalid_total() -> float:
        text = await (await state["client"].get("/metrics")).text()
        return sample(text, "tierguard_invalid_requests_total")

    statuses: list[int] = []

    invalid = [0.0]  # the counter's value after the last request checked

    def check(data: bytes) -> None:
        status, payload, ctype = loop.run_until_complete(send(data))
        statuses.append(status)
        assert status < 500, (data[:300], status, payload[:300])
        if status >= 400:
            err = json.loads(payload)["error"]
            assert set(err) == ERROR_KEYS, err
            # the upstream's own refusal of a request the router passed on is counted as
            # that model's error, not as an invalid request
            counted = 0 if err["code"] == "upstream_rejected" else 1
            now = loop.run_until_complete(invalid_total())
            assert now == invalid[0] + counted, err
            invalid[0] = now
        elif ctype.startswith("text/event-stream"):
            lines = [ln for ln in payload.decode().splitlines() if ln.startswith("data: ")]
            assert lines[-1] == "data: [DONE]", lines[-3:]
        else:
            assert json.loads(payload)["choices"]

    @settings(
        max_examples=300,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(REQUEST)
    def fuzz_json(body: Any) -> None:
        check(json.dumps(body).encode())

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.binary(max_size=200))
    def fuzz_bytes(data: bytes) -> None:
        check(data)

    loop.run_until_complete(start())
    try:
        fuzz_json()
        fuzz_bytes()
        # the fuzz reached the request path, not only validation
        assert statuses.count(200) >= 50 and statuses.count(400) >= 50, statuses
    finally:
        loop.run_until_complete(state["client"].close())
        loop.run_until_complete(fake.close())
        loop.close()


# --------------------------------------------------------------------------- item 8

IMAGE_ONLY = [
    {
        "role": "user",
        "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}],
    }
]
SYSTEM_ONLY = [{"role": "system", "content": SIMPLE_QUERY}]
BLANK = [{"role": "user", "content": "   \n"}]


@pytest.mark.parametrize("messages", [IMAGE_ONLY, SYSTEM_ONLY, BLANK])
async def test_nothing_to_classify_goes_to_the_most_capable_tier(
    env: Env, messages: list[dict[str, Any]], tmp_path: Path
) -> None:
    path = tmp_path / "decisions.jsonl"
    env.runtime.decision_log = DecisionLog(str(path))
    r = await post(env, {"model": "auto", "messages": messages})
    assert r.status == 200 and r.headers["x-tierguard-tier"] == "complex"
    env.runtime.decision_log.flush()
    (line,) = [json.loads(x) for x in path.read_text().splitlines()]
    assert line["tier_source"] == "no_text" and line["probabilities"] is None
    # the classifier was not asked
    assert sample(await env.metrics(), "tierguard_classifier_duration_seconds_count") == 0


@pytest.mark.parametrize("env", [{"classifier": {"noTextTier": "simple"}}], indirect=True)
async def test_nothing_to_classify_tier_is_configurable(env: Env) -> None:
    r = await post(env, {"model": "auto", "messages": IMAGE_ONLY})
    assert r.status == 200 and r.headers["x-tierguard-tier"] == "simple"
    r = await post(env, {"model": "auto", "messages": [{"role": "user", "content": COMPLEX_QUERY}]})
    assert r.headers["x-tierguard-tier"] == "complex"  # text is still classified


def test_nothing_to_classify_tier_must_be_a_tier(tiny_classifier: Path) -> None:
    cfg = router_config(tiny_classifier, classifier={"noTextTier": "medium"})
    with pytest.raises(ValueError, match="noTextTier"):
        RouterConfig.model_validate(cfg)
