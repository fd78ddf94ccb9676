"""Clustering study: false rollbacks when one user's outcomes are correlated.

    PYTHONPATH=src .venv/bin/python bench/detection/clustering.py --seed 20261201

The router assigns whole users to an arm; a user who dislikes the answers dislikes many.
This study replays A/A rollouts (identical models) with sticky users whose outcomes
share an intra-user correlation (ICC) of 0, 0.02 and 0.05 (``users.py``), judged by the
operator's gate path (default fail margin, design effect from the per-cluster counters),
and, for contrast, by the same gates without the design effect. It also reports the
price: a within-SLO canary (1 point worse, 3 allowed) and a real 5-point loss in the
smallest tier under clustering.

Writes ``bench/detection/clustering.json`` and the table between the ``clustering``
markers in ``docs/benchmarks.md``; ``tests/unit/test_detection_study.py`` recomputes a
quick cell and checks the docs against the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sim  # noqa: E402
import users  # noqa: E402

RESULTS = HERE / "clustering.json"
DOC = HERE.parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- clustering:begin -->", "<!-- clustering:end -->"

#: Heavy users: an API key or a power user sending 200 requests a day, so a user sends
#: hundreds of requests during a rollout -- where per-user correlation bites hardest.
REQUESTS_PER_USER_DAY = 200.0
RPM = sim.MID_RPM
HORIZON_MINUTES = 2 * 24 * 60


def scenario(kind: str) -> sim.Scenario:
    sc = sim.Scenario(
        name=f"{RPM:g} req/min, {REQUESTS_PER_USER_DAY:g} requests per user a day",
        requests_per_minute=RPM,
        max_step_minutes=HORIZON_MINUTES,
        horizon_minutes=HORIZON_MINUTES,
    )
    if kind == "within":  # 1 point worse on the judged signal, 3 allowed: within the SLO
        return replace(sc, drop=0.01, drop_tier=0)
    if kind == "drop":
        return replace(sc, drop=0.05)
    return sc


#: (key, scenario kind, ICC, method)
CELLS: tuple[tuple[str, str, float, sim.Method], ...] = (
    ("aa-0", "aa", 0.0, "tierguard"),
    ("aa-0.02", "aa", 0.02, "tierguard"),
    ("aa-0.05", "aa", 0.05, "tierguard"),
    ("aa-0.05-unadjusted", "aa", 0.05, "tierguard_unadjusted"),
    ("within-0.02", "within", 0.02, "tierguard"),
    ("drop-0.05", "drop", 0.05, "tierguard"),
)
#: The cell the test recomputes: a real loss under clustering ends fast (caught early).
QUICK = ("drop-0.05",)


def compute(runs: int, seed: int, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for key, kind, icc, method in CELLS:
        if keys is not None and key not in keys:
            continue
        sc = scenario(kind)
        started = time.time()
        res = sim.simulate(
            sc,
            method,
            runs,
            seed + zlib.crc32(key.encode()) % 1_000_000,
            traffic=users.clustered_traffic(icc, REQUESTS_PER_USER_DAY),
        )
        out.append(
            {
                "cell": key,
                "scenario": kind,
                "icc": icc,
                "method": method,
                **sim.summarise(res, sc),
                "seconds": round(time.time() - started, 1),
            }
        )
        sys.stderr.write(f"{key}: {out[-1]['rolled_back']:.3f} rolled back\n")
    return {
        "seed": seed,
        "runs": runs,
        "requests_per_minute": RPM,
        "requests_per_user_day": REQUESTS_PER_USER_DAY,
        "horizon_minutes": HORIZON_MINUTES,
        "results": out,
    }


def render(data: dict[str, Any]) -> str:
    kinds = {
        "aa": "identical models (A/A)",
        "within": "canary 1 pt worse, 3 pt allowed",
        "drop": "5-point loss in the smallest tier",
    }
    rows = [
        f"Seed {data['seed']}; {data['runs']} rollouts per row, "
        f"{data['requests_per_minute']:g} eligible requests/min, "
        f"{data['requests_per_user_day']:g} requests per user a day, sticky users, "
        f"16 user clusters, horizon {data['horizon_minutes'] // 1440} days.",
        "",
        "| scenario | intra-user correlation | gates | rolled back | promoted "
        "| paused | rolled back at the first stage |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        gates = (
            "operator (design effect)"
            if r["method"] == "tierguard"
            else "without the design effect"
        )
        rows.append(
            f"| {kinds[r['scenario']]} | {r['icc']:g} | {gates} | {r['rolled_back']:.1%} "
            f"| {r['promoted']:.1%} | {r['paused']:.1%} | {r['rolled_back_by_stage'][0]:.1%} |"
        )
    return "\n".join(rows)


def write_doc(data: dict[str, Any]) -> None:
    sim.replace_block(DOC, BEGIN, END, render(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.time()
    data = compute(args.runs, args.seed)
    data["wall_seconds"] = round(time.time() - started)
    if args.no_write:
        print(render(data))
        return 0
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    write_doc(data)
    print(render(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
