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


def test_repeated_cells_report_medians() -> None:
    run = _load("run")
    reps = [
        {"n": 10, "errors": 0, "p50_ms": p50, "p99_ms": 9.0, "rps": 100.0, "cpu_s": 1.0,
         "rps_per_core": per, "rss_mib": 100.0, "loadavg_1m": load,
         "self_overhead_ms": {"parse": p50 / 10, "total": p50 / 5}}
        for p50, per, load in ((1.0, 900.0, 3.0), (5.0, 100.0, 9.0), (2.0, 1000.0, 4.0))
    ]  # fmt: skip
    row = run.median_cell(reps)
    assert (row["p50_ms"], row["rps_per_core"], row["loadavg_1m"]) == (2.0, 900.0, 4.0)
    assert (row["n"], row["errors"]) == (30, 0)
    assert row["self_overhead_ms"] == {"parse": 0.2, "total": 0.4}
    assert [r["p50_ms"] for r in row["reps"]] == [1.0, 5.0, 2.0]
    row.update(target="direct", stream=False, concurrency=1)
    table = run.markdown({"runs": [row], "levels": [1], "repeat": 3, "duration_s": 2.0, "cpus": 2})
    assert table.startswith("Medians of 3 repetitions of 2 s per cell; 1-minute load average")
    assert "| JSON | 1 | 2.00 / 9.00 |" in table
