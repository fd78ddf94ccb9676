"""The router's self-reported overhead through the real app against in-process fake
providers: tierguard_router_overhead_seconds by phase, the classifier's own latency, and
the opt-in x-tierguard-overhead-ms header (JSON and streaming)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routerkit import SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import metrics as m
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router.app import RouterSettings, create_app
from tierguard.router.overhead import OVERHEAD_HEADER

pytestmark = pytest.mark.timeout(60)

UPSTREAM_LATENCY_S = 0.5  # far above any overhead, so including it would show


@pytest.fixture
async def client(
    tiny_classifier: Path, request: pytest.FixtureRequest
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    overrides: dict[str, Any] = getattr(request, "param", {})
    behaviour = ModelBehaviour(latency_median_s=UPSTREAM_LATENCY_S)
    fake = TestServer(create_fake_app(FakeProfile(models={"*": behaviour})))
    await fake.start_server()
    url = str(fake.make_url("/v1"))
    cfg = router_config(tiny_classifier, big_url=url, small_url=url, **overrides)
    c = TestClient(TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()
        await fake.close()


def samples(text: str, name: str) -> dict[str, float]:
    """phase → value of ``name`` (a _sum or _count series) in an exposition."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(name + "{"):
            labels = dict(p.split("=", 1) for p in line[len(name) + 1 : line.index("}")].split(","))
            out[labels["phase"].strip('"')] = float(line.rsplit(" ", 1)[1])
    return out


async def chat(client: TestClient[web.Request, web.Application], **extra: Any) -> Any:
    body = {"model": "auto", "messages": [{"role": "user", "content": SIMPLE_QUERY}], **extra}
    return await client.post("/v1/chat/completions", json=body)


async def test_overhead_by_phase_excludes_upstream_time(
    client: TestClient[web.Request, web.Application],
) -> None:
    for stream in (False, True):
        r = await chat(client, stream=stream)
        assert r.status == 200
        await r.read()
        assert OVERHEAD_HEADER not in r.headers  # opt-in only
    text = await (await client.get("/metrics")).text()
    counts = samples(text, f"{m.ROUTER_OVERHEAD.name}_count")
    sums = samples(text, f"{m.ROUTER_OVERHEAD.name}_sum")
    assert counts == {p: 2.0 for p in m.PHASES}
    assert all(sums[p] > 0 for p in m.PHASES), sums
    # each request waited UPSTREAM_LATENCY_S on the fake; none of it is overhead
    assert sum(sums.values()) < 2 * UPSTREAM_LATENCY_S
    # the classifier's own latency: observed when the model ran; the second request's
    # (same) message came from the per-message cache, so the model ran once
    cls_sum = float(
        next(
            line.rsplit(" ", 1)[1]
            for line in text.splitlines()
            if line.startswith(f"{m.CLASSIFIER_DURATION.name}_sum")
        )
    )
    assert f'{m.CLASSIFIER_DURATION.name}_count{{policy="support"}} 1.0' in text
    assert 0 < cls_sum <= sums["classify"]


@pytest.mark.parametrize("client", [{"observability": {"overheadHeader": True}}], indirect=True)
async def test_overhead_header_when_enabled(
    client: TestClient[web.Request, web.Application],
) -> None:
    for stream in (False, True):
        r = await chat(client, stream=stream)
        assert r.status == 200
        await r.read()
        ms = float(r.headers[OVERHEAD_HEADER])
        assert 0 < ms < UPSTREAM_LATENCY_S * 1000  # the upstream's wait is not in it


async def test_json_bookkeeping_runs_after_the_answer_and_before_the_next_request(
    client: TestClient[web.Request, web.Application],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A JSON answer's accounting runs once the answer is written (accounting.account_soon):
    a failure in it no longer costs the client its answer, and the next request (here
    the scrape) already sees what it recorded."""
    from tierguard.router import pipeline

    real = pipeline.account
    seen: list[str] = []

    def failing(*args: Any, **kwargs: Any) -> Any:
        real(*args, **kwargs)  # metrics and log recorded, then a bug
        seen.append("accounted")
        raise RuntimeError("bookkeeping bug")

    monkeypatch.setattr(pipeline, "account", failing)
    r = await chat(client)
    assert r.status == 200
    body = await r.json()
    assert body["choices"][0]["message"]["content"]
    text = await (await client.get("/metrics")).text()
    assert seen == ["accounted"]
    assert f"{m.REQUESTS.name}{{" in text and 'outcome="ok"' in text
    assert samples(text, f"{m.ROUTER_OVERHEAD.name}_count") == {p: 1.0 for p in m.PHASES}
    assert "accounting for request" in caplog.text and "bookkeeping bug" in caplog.text
