"""A real Prometheus scraping a real router process: per tier and arm, the PromQL the
operator runs returns exactly the counts the clients saw."""

from __future__ import annotations

import json
import urllib.parse
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import openai
import pytest

from routerkit import (
    COMPLEX_QUERY,
    SIMPLE_QUERY,
    fake_provider,
    http,
    router_config,
    router_process,
)
from routerkit import tiny_classifier as tiny_classifier

if TYPE_CHECKING:
    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def promql(prom: Prometheus, query: str) -> list[dict[str, Any]]:
    status, body = http(
        "GET", f"{prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    )
    if isinstance(body, str):
        body = json.loads(body)
    assert status == 200 and body["status"] == "success", body
    return list(body["data"]["result"])


def test_promql_per_tier_and_arm_matches_traffic(
    tiny_classifier: Path,
    tmp_path: Path,
    prometheus: Prometheus,
    wait_for: Callable[..., Any],
) -> None:
    with fake_provider(tmp_path, "big") as big, fake_provider(tmp_path, "small") as small:
        cfg = router_config(
            tiny_classifier, big_url=f"{big}/v1", small_url=f"{small}/v1", weight=30
        )
        with router_process(tmp_path, cfg) as (url, _, _proc):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="x", max_retries=0)
            seen: Counter[tuple[str, str]] = Counter()
            down: Counter[tuple[str, str]] = Counter()
            for i in range(60):
                query = COMPLEX_QUERY if i % 4 == 0 else SIMPLE_QUERY
                raw = client.chat.completions.with_raw_response.create(
                    model="auto", messages=[{"role": "user", "content": query}], user=f"u{i}"
                )
                key = (raw.headers["x-tierguard-tier"], raw.headers["x-tierguard-arm"])
                seen[key] += 1
                if i % 3 == 0:
                    status, _ = http(
                        "POST", f"{url}/v1/feedback", {"id": raw.parse().id, "rating": "down"}
                    )
                    assert status == 200
                    down[key] += 1
            assert {k for k in seen} == {
                ("simple", "control"),
                ("simple", "canary"),
                ("complex", "stable"),
            }
            prometheus.set_targets([url.removeprefix("http://")])

            def counts(metric: str, extra: str = "") -> dict[tuple[str, str], int]:
                rows = promql(
                    prometheus, f'sum by (tier, arm) ({metric}{{policy="support"{extra}}})'
                )
                return {
                    (r["metric"]["tier"], r["metric"]["arm"]): int(float(r["value"][1]))
                    for r in rows
                }

            wait_for(
                lambda: counts("tierguard_requests_total") == dict(seen),
                timeout=60,
                message=f"Prometheus never reported {dict(seen)}",
            )
            assert counts("tierguard_requests_total", ',outcome="ok"') == dict(seen)
            assert counts("tierguard_feedback_total", ',rating="down"') == dict(down)
            ratio = promql(
                prometheus,
                'sum(tierguard_request_duration_seconds_count{tier="simple",arm="canary"})',
            )
            assert int(float(ratio[0]["value"][1])) == seen[("simple", "canary")]
