"""Session tiers against per-request tiers, on the lab's conversation mix.

    PYTHONPATH=src python bench/router/sessions.py            # full (about a minute)
    PYTHONPATH=src python bench/router/sessions.py --quick    # a few seconds (tests)

Two parts, one run, ratios side by side:

1. **Classification cost against conversation length.** The bundled classifier, real
   conversations from the lab's query generator. For a conversation of L user messages,
   the cost of planning turn L: session tiers with the per-message cache (earlier turns
   warmed it, as they do in a router), session tiers without a cache, and per-request
   tiers (only the last message). Reported as messages classified and microseconds per
   request, and the ratio to L = 1: with the cache it stays flat.
2. **Cache hits and cost per conversation.** An in-process router (the real app) in front
   of two in-process fake providers (cheap and capable, lab prices with the usual 90 %
   cached-input discount, prefix caches on), simple tier fully on the cheap candidate.
   The same conversations (lab mix: simple-reading follow-ups, one in five an agent loop)
   are sent with ``classifier.tiering: Session`` and ``Request``; reported: model switches
   per conversation, the prompt-cache hit ratio, cost per conversation, the share of
   requests on the cheap model, and tool results refused as foreign (must be 0).

Results go to bench/router/sessions.json and a Markdown table on stdout (copied into
docs/benchmarks.md, section "Sessions").
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src")]

from aiohttp.test_utils import TestClient, TestServer  # noqa: E402

from tierguard.api.policy import Pricing  # noqa: E402
from tierguard.api.routerconfig import RouterConfig  # noqa: E402
from tierguard.classifier.dataset import generate  # noqa: E402
from tierguard.classifier.runtime import default_model_path, load_classifier  # noqa: E402
from tierguard.lab import lab_policy as lp  # noqa: E402
from tierguard.lab import scenario_world as sw  # noqa: E402
from tierguard.lab.conversations import (  # noqa: E402
    AGENT_SHARE,
    AGENT_TOOL_ROUNDS,
    SESSION_HEADER,
    Conversation,
    ConversationTally,
)
from tierguard.lab.fakeprofile import FakeProfile, ModelBehaviour  # noqa: E402
from tierguard.lab.fakeprovider import create_fake_app  # noqa: E402
from tierguard.lab.population import Population  # noqa: E402
from tierguard.router.app import RouterSettings, create_app  # noqa: E402
from tierguard.router.records import usage_cost  # noqa: E402
from tierguard.router.tiering import TierCache, session_tier  # noqa: E402

OUT = Path(__file__).with_name("sessions.json")
LENGTHS = (1, 2, 4, 8, 16, 32)
#: cached input at a tenth of the input price, as 2026 providers bill it
CACHED_SHARE = 0.1
PRICES = {
    sw.CAPABLE: Pricing(
        input_per_million_tokens=sw.CAPABLE_PRICE[0],
        output_per_million_tokens=sw.CAPABLE_PRICE[1],
        cached_input_per_million_tokens=sw.CAPABLE_PRICE[0] * CACHED_SHARE,
    ),
    sw.CHEAP: Pricing(
        input_per_million_tokens=sw.CHEAP_PRICE[0],
        output_per_million_tokens=sw.CHEAP_PRICE[1],
        cached_input_per_million_tokens=sw.CHEAP_PRICE[0] * CACHED_SHARE,
    ),
}


# --------------------------------------------------------------------------- part 1


def classification_cost(conversations: int, seed: int) -> list[dict[str, Any]]:
    classifier = load_classifier(default_model_path())
    tiers = list(classifier.metadata.tiers)
    pool = [e.text for e in generate(conversations * max(LENGTHS), seed=seed, split="all")]
    rows = []
    for length in LENGTHS:
        timings: dict[str, list[float]] = {"cached": [], "uncached": [], "request": []}
        counts: dict[str, list[int]] = {"cached": [], "uncached": [], "request": []}
        cache = TierCache(100_000)
        for c in range(conversations):
            texts = pool[c * max(LENGTHS) : c * max(LENGTHS) + length]
            for n in range(1, length):  # earlier turns warm the cache, as in a router
                session_tier(texts[:n], tiers, classifier.classify_batch, cache)
            for mode in ("cached", "uncached"):
                t0 = time.perf_counter()
                st = session_tier(
                    texts,
                    tiers,
                    classifier.classify_batch,
                    cache if mode == "cached" else TierCache(0),
                )
                timings[mode].append(time.perf_counter() - t0)
                counts[mode].append(st.classified)
            t0 = time.perf_counter()
            classifier.classify_batch([texts[-1]])
            timings["request"].append(time.perf_counter() - t0)
            counts["request"].append(1)
        rows.append(
            {
                "length": length,
                **{f"{m}_messages": statistics.mean(v) for m, v in counts.items()},
                **{f"{m}_us": 1e6 * statistics.median(v) for m, v in timings.items()},
            }
        )
    base = rows[0]
    for r in rows:
        for m in ("cached", "uncached", "request"):
            r[f"{m}_ratio"] = r[f"{m}_us"] / base[f"{m}_us"]
    return rows


# --------------------------------------------------------------------------- part 2


def _config(cheap_url: str, capable_url: str, tiering: str) -> RouterConfig:
    def model(name: str, url: str) -> dict[str, Any]:
        p = PRICES[name]
        return {
            "name": name,
            "baseURL": url,
            "upstreamModel": f"{name}-1",
            "pricing": p.model_dump(by_alias=True),
            "timeout": "10s",
            "systemPrompt": lp.SYSTEM_PROMPT,
        }

    return RouterConfig.model_validate(
        {
            "policy": "bench",
            "salt": "bench",
            "classifier": {
                "tiering": tiering,
                "tiers": [{"name": sw.SIMPLE}, {"name": sw.COMPLEX}],
            },
            "models": [model(sw.CAPABLE, capable_url), model(sw.CHEAP, cheap_url)],
            "routes": [
                {
                    "tier": sw.SIMPLE,
                    "baseline": sw.CAPABLE,
                    "candidate": sw.CHEAP,
                    "fallbacks": [sw.CAPABLE],
                },
                {"tier": sw.COMPLEX, "baseline": sw.CAPABLE},
            ],
            "split": [{"tier": sw.SIMPLE, "weight": 100.0}],
            "observability": {"decisionLog": None},
        }
    )


async def conversation_mix(turns: int, seed: int, tiering: str) -> dict[str, Any]:
    profile = FakeProfile(models={"*": ModelBehaviour(latency_median_s=0.0)})
    fakes = {n: TestServer(create_fake_app(profile)) for n in (sw.CHEAP, sw.CAPABLE)}
    for f in fakes.values():
        await f.start_server()
    cfg = _config(
        str(fakes[sw.CHEAP].make_url("/v1")), str(fakes[sw.CAPABLE].make_url("/v1")), tiering
    )
    client = TestClient(TestServer(create_app(RouterSettings(config=cfg))))
    await client.start_server()
    rng = random.Random(seed)
    population = Population(sw.TrafficSpec(users=200, session_length=4.0, seed=seed))
    open_: dict[str, Conversation] = {}
    tally = ConversationTally()
    cost = 0.0
    served: Counter[str] = Counter()
    try:
        for _ in range(turns):
            turn = population.next_turn()
            conv = open_.get(turn.session)
            if conv is None:
                agent = rng.random() < AGENT_SHARE
                conv = Conversation(turn.session, turn.user, turn.example.category, agent)
                open_[turn.session] = conv
            conv.add_user_turn(turn.example.text, rng, turn.example.category)
            for round_ in range(AGENT_TOOL_ROUNDS + 1):
                r = await client.post(
                    "/v1/chat/completions",
                    json=conv.request_body("auto"),
                    headers={SESSION_HEADER: conv.id},
                )
                payload = await r.json()
                model = r.headers.get("x-tierguard-model")
                usage = payload.get("usage") if r.status == 200 else None
                error = payload.get("error") if r.status != 200 else None
                tally.record(
                    conv,
                    status=r.status,
                    error_code=error.get("code") if isinstance(error, dict) else None,
                    model=model,
                    tier=r.headers.get("x-tierguard-tier"),
                    usage=usage,
                    tool_result=round_ > 0,
                )
                if model is not None:
                    served[model] += 1
                    cost += usage_cost(PRICES[model], usage).cost_usd
                if r.status != 200 or not conv.add_answer(payload):
                    break
            if turn.last:
                open_.pop(turn.session, None)
    finally:
        await client.close()
        for f in fakes.values():
            await f.close()
    s = tally.summary()
    n = s["conversations"]
    return {
        "tiering": tiering,
        "conversations": n,
        "requests": s["requests"],
        "model_switches_per_conversation": s["model_switches"] / n,
        "conversations_switched": s["sessions_with_switch"] / n,
        "tier_drops": s["tier_drops"],
        "unsafe_switches": s["unsafe_switches"],
        "cache_hit_ratio": s["cache_hit_ratio"],
        "cost_per_conversation_usd": cost / n,
        "cheap_share": served[sw.CHEAP] / max(1, sum(served.values())),
    }


# --------------------------------------------------------------------------- output


def render(result: dict[str, Any]) -> str:
    lines = [
        "Classification per request against conversation length (bundled classifier; "
        "median µs, messages classified; ratio to one message):",
        "",
        "| user messages | session tiers, cached | session tiers, no cache | per-request tiers |",
        "|---:|---:|---:|---:|",
    ]
    for r in result["classification"]:
        cells = [
            f"{r[f'{m}_us']:.0f} µs, {r[f'{m}_messages']:.0f} msg (×{r[f'{m}_ratio']:.1f})"
            for m in ("cached", "uncached", "request")
        ]
        lines.append(f"| {r['length']} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The lab's conversation mix through the router, simple tier fully on the cheap "
        "candidate (same conversations, same seed):",
        "",
        "| tiering | conversations (requests) | model switches / conversation | "
        "conversations that switched | prompt-cache hit ratio | cost / conversation | "
        "requests on the cheap model | tier drops | foreign tool-call 400s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["mix"]:
        lines.append(
            f"| {r['tiering']} | {r['conversations']} ({r['requests']}) | "
            f"{r['model_switches_per_conversation']:.3f} | "
            f"{100 * r['conversations_switched']:.1f} % | "
            f"{100 * (r['cache_hit_ratio'] or 0):.1f} % | "
            f"${r['cost_per_conversation_usd']:.6f} | {100 * r['cheap_share']:.1f} % | "
            f"{r['tier_drops']} | {r['unsafe_switches']} |"
        )
    return "\n".join(lines)


def run(quick: bool, seed: int = 15) -> dict[str, Any]:
    result = {
        "quick": quick,
        "classification": classification_cost(5 if quick else 60, seed),
        "mix": [
            asyncio.run(conversation_mix(60 if quick else 2000, seed, tiering))
            for tiering in ("Session", "Request")
        ],
    }
    return result


def main() -> None:
    logging.basicConfig(level="ERROR")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds (tests)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result = run(args.quick)
    if not args.quick:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(render(result))


if __name__ == "__main__":
    main()
