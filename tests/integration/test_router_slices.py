"""Slice labels through the real router app (in-process, fake providers on loopback):
requests, feedback and shadow judgements are counted per declared slice value, values
outside the list as ``other``; the slice values travel in the signed decision id."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from routerkit import SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api.routerconfig import RouterConfig
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour
from tierguard.lab.fakeprovider import create_fake_app
from tierguard.router import decision_id
from tierguard.router.app import RUNTIME, RouterSettings, create_app

pytestmark = pytest.mark.timeout(60)
Client = TestClient[web.Request, web.Application]

SLICES = [
    {"name": "category", "key": "category", "values": ["billing_status", "refunds"]},
    {"name": "plan", "source": "Header", "key": "X-Plan", "values": ["free", "pro"]},
]


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


@pytest.fixture
async def client(tiny_classifier: Path) -> AsyncIterator[Client]:
    fakes = [
        TestServer(create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0)})))
        for _ in range(2)
    ]
    for f in fakes:
        await f.start_server()
    cfg = router_config(
        tiny_classifier,
        big_url=str(fakes[0].make_url("/v1")),
        small_url=str(fakes[1].make_url("/v1")),
        weight=100,
        slices=SLICES,
        shadow={"sampleRate": 1.0},
    )
    app = create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))
    c = TestClient(TestServer(app))
    await c.start_server()
    try:
        yield c
    finally:
        await c.close()
        for f in fakes:
            await f.close()


async def chat(client: Client, metadata: dict[str, Any], plan: str | None) -> dict[str, Any]:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": SIMPLE_QUERY}],
        "metadata": metadata,
    }
    headers = {"X-Plan": plan} if plan else {}
    r = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert r.status == 200, await r.text()
    assert r.headers["x-tierguard-tier"] == "simple"
    out: dict[str, Any] = await r.json()
    return out


async def test_requests_feedback_and_shadow_are_counted_per_slice_value(
    client: Client,
) -> None:
    first = await chat(client, {"category": "Billing_Status"}, "pro")
    await chat(client, {"category": "lottery"}, None)
    state = client.app[RUNTIME].state
    assert state is not None
    key = state.signing_key
    d = decision_id.verify(first["id"], key, now=first["created"] + 1, ttl_s=60)
    assert d.slices == (("category", "billing_status"), ("plan", "pro"))
    lines = (await (await client.get("/admin/review-sample")).text()).splitlines()
    slices_seen = [json.loads(line).get("slices") for line in lines]
    assert {"category": "billing_status", "plan": "pro"} in slices_seen
    r = await client.post("/v1/feedback", json={"id": first["id"], "rating": "down"})
    assert r.status == 200
    for _ in range(100):
        text = await (await client.get("/metrics")).text()
        if sample(text, "tierguard_slice_shadow_judgements_total") >= 4:
            break
        await asyncio.sleep(0.05)
    req = "tierguard_slice_requests_total"
    common = {"tier": "simple", "arm": "canary", "outcome": "ok"}
    assert sample(text, req, slice="category", slice_value="billing_status", **common) == 1
    assert sample(text, req, slice="category", slice_value="other", **common) == 1
    assert sample(text, req, slice="plan", slice_value="pro", **common) == 1
    assert sample(text, req, slice="plan", slice_value="other", **common) == 1
    assert sample(text, req) == 4, "each request once per slice"
    fb = "tierguard_slice_feedback_total"
    assert sample(text, fb, slice="category", slice_value="billing_status", rating="down") == 1
    assert sample(text, fb, slice="plan", slice_value="pro", rating="down") == 1
    assert sample(text, fb) == 2
    sh = "tierguard_slice_shadow_judgements_total"
    assert sample(text, sh, slice="category", slice_value="billing_status", arm="canary") == 1
    assert sample(text, sh, slice="category") == 2


async def test_classifier_source_counts_the_category_heads_label() -> None:
    """``source: Classifier`` with the shipped model (it has a category head): the slice
    value is the label the model gives the query, whatever the request's metadata says;
    labels outside the declared list count as ``other``."""
    from tierguard.classifier.runtime import default_model_path

    fake = TestServer(
        create_fake_app(FakeProfile(models={"*": ModelBehaviour(latency_median_s=0)}))
    )
    await fake.start_server()
    url = str(fake.make_url("/v1"))
    slices = [
        {"name": "topic", "source": "Classifier", "values": ["billing_status", "order_tracking"]}
    ]
    cfg = router_config(default_model_path(), big_url=url, small_url=url, weight=100, slices=slices)
    c = TestClient(TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg)))))
    await c.start_server()
    try:
        queries = {
            "where is my order #123456?": "order_tracking",
            "when does my invoice get paid": "billing_status",
            "what are your opening hours on sunday": "other",  # opening_hours: not declared
        }
        for text, want in queries.items():
            body = {
                "model": "auto",
                "messages": [{"role": "user", "content": text}],
                "metadata": {"topic": "order_tracking"},  # not the source: ignored
            }
            r = await c.post("/v1/chat/completions", json=body)
            assert r.status == 200, await r.text()
            out = await r.json()
            state = c.app[RUNTIME].state
            assert state is not None
            d = decision_id.verify(out["id"], state.signing_key, now=out["created"] + 1, ttl_s=60)
            assert d.slices == (("topic", want),), text
        text = await (await c.get("/metrics")).text()
        req = "tierguard_slice_requests_total"
        for value in ("order_tracking", "billing_status", "other"):
            assert sample(text, req, slice="topic", slice_value=value, tier="simple") == 1, value
    finally:
        await c.close()
        await fake.close()
