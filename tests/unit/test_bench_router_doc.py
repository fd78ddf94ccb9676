"""docs/benchmarks.md shows exactly the recorded router benchmark (bench/router/run.py's
tables rendered from bench/router/results.json), and the profile's bucketing of py-spy
stacks (bench/router/stacks.py, used by profile.py) puts each sample where the docs say."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load(name: str) -> ModuleType:
    path = ROOT / "bench" / "router" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"bench_router_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_docs_show_the_recorded_router_benchmark() -> None:
    run = _load("run")
    results = json.loads((ROOT / "bench" / "router" / "results.json").read_text())
    text = (ROOT / "docs" / "benchmarks.md").read_text()
    assert run.markdown(results) in text, "docs/benchmarks.md is stale: rerun bench/router/run.py"


def test_profile_buckets() -> None:
    profile = _load("stacks")
    base = [
        "<module> (tierguard/cli.py:56)",
        "run (tierguard/router/cli.py:146)",
        "Runner.run (asyncio/runners.py:118)",
    ]
    assert profile.bucket_of(base).startswith("event loop")
    chat = [*base, "_chat (tierguard/router/app.py:201)"]
    assert profile.bucket_of(chat).startswith("router logic")
    assert profile.bucket_of([*chat, "loads (tierguard/router/jsonlib.py:42)"]).startswith("JSON")
    assert profile.bucket_of(
        [
            *chat,
            "account (tierguard/router/pipeline.py:1)",
            "MutexValue.inc (prometheus_client/values.py:28)",
        ]
    ).startswith("metrics")
