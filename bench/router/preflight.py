"""Pre-flight mirroring and the primary path: does mirrored work slow users down?

    PYTHONPATH=src python bench/router/preflight.py [--requests 600] [--concurrency 16]

One process, one event loop: the fake provider (50 ms per answer), the router app and
the load (``concurrency`` users asking simple questions, each a new session, so every
request is mirrored at ``mirrorRate: 1.0``). Three runs with the same load: mirroring
off; mirroring on with a healthy candidate and judge; mirroring on with the candidate and
the judge stalled (every call hangs to its 5 s timeout, so the bounded mirror queue fills
and sheds). The figures are the users' latencies (client side, the router's answer),
p50 and p99, and how many mirrors ran and were shed. Sharing one loop with the fake and
the load makes absolute figures pessimistic; the comparison between runs is the point.
Results: bench/router/preflight.json (and docs/benchmarks.md, "Pre-flight mirroring").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import aiohttp  # noqa: E402
from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from routerkit import SIMPLE_QUERY, build_tiny_classifier, router_config  # noqa: E402
from tierguard.api.routerconfig import RouterConfig  # noqa: E402
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour  # noqa: E402
from tierguard.lab.fakeprovider import create_fake_app  # noqa: E402
from tierguard.router.app import RUNTIME, RouterSettings, create_app  # noqa: E402

OUT = Path(__file__).with_name("preflight.json")


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def _sample(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def one_run(classifier: Path, mode: str, n: int, concurrency: int) -> dict[str, Any]:
    behaviour = ModelBehaviour(latency_median_s=0.05, latency_sigma=0.0, default_quality=1.0)
    fake = TestServer(create_fake_app(FakeProfile(models={"*": behaviour})))
    await fake.start_server()
    url = str(fake.make_url("/v1"))
    cfg = router_config(
        classifier,
        big_url=url,
        small_url=url,
        weight=0,
        shadow={"sampleRate": 1.0, "judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}},
    )
    cfg["split"][0]["mirrorRate"] = 0.0 if mode == "off" else 1.0
    cfg["models"].append({"name": "judge", "baseURL": url, "upstreamModel": "judge-1"})
    client = TestClient(
        TestServer(create_app(RouterSettings(config=RouterConfig.model_validate(cfg))))
    )
    await client.start_server()
    if mode == "stalled":
        async with aiohttp.ClientSession() as s:
            for model in ("small-1", "judge-1"):
                patch = str(fake.make_url(f"/admin/profile/{model}"))
                async with s.patch(patch, json={"hang_rate": 1.0}) as r:
                    assert r.status == 200
    latencies: list[float] = []
    queue = iter(range(n))

    async def user() -> None:
        for i in queue:
            body = {
                "model": "auto",
                "messages": [{"role": "user", "content": f"{SIMPLE_QUERY} {i}"}],
            }
            t = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body)
            await r.read()
            assert r.status == 200
            latencies.append(time.perf_counter() - t)

    try:
        await asyncio.gather(*(user() for _ in range(concurrency)))
        m = await (await client.get("/metrics")).text()
        rt = client.app[RUNTIME]
        in_flight = rt.mirrors_in_flight
    finally:
        await client.close()
        await fake.close()
    return {
        "mode": mode,
        "requests": len(latencies),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(_pct(latencies, 0.99) * 1000, 1),
        "mirrors_judged": _sample(m, "tierguard_shadow_pairwise_total", arm="mirror"),
        "mirrors_in_flight_at_end": in_flight,
        "mirrors_shed": _sample(m, "tierguard_preflight_shed_total"),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    out = [
        "| mirroring | requests | user p50 | user p99 | mirrors judged | in flight at end | shed |",
        "|---|---|---|---|---|---|---|",
    ]
    for x in rows:
        out.append(
            f"| {x['mode']} | {x['requests']} | {x['p50_ms']} ms | {x['p99_ms']} ms | "
            f"{x['mirrors_judged']:.0f} | {x['mirrors_in_flight_at_end']} | "
            f"{x['mirrors_shed']:.0f} |"
        )
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=600)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        classifier = build_tiny_classifier(Path(tmp) / "tiny.onnx")
        rows = [
            asyncio.run(one_run(classifier, mode, args.requests, args.concurrency))
            for mode in ("off", "healthy", "stalled")
        ]
    OUT.write_text(json.dumps({"concurrency": args.concurrency, "rows": rows}, indent=1) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
