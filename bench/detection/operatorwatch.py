"""The post-promotion watch on the operator's own path (issue 13, item 3).

    PYTHONPATH=src .venv/bin/python bench/detection/operatorwatch.py --seed 20261201

Each simulated rollout is the operator-path study's (``operatorpath.py``: the same
system, sticky correlated users, pairwise judge, the **policy defaults**, among them
``holdbackPercent`` 5, which keeps the post-promotion watch on) driven through
``rollout.reconcile`` until it is promoted; from there the same state machine keeps
looking for ``DAYS`` days: at promotion the control arm becomes the holdback (5 % of
each tier's users stay on the baseline), the rollout's e-processes are frozen and every
gate runs its **watch** (``gateupdates._advance_watch`` / ``pairedgate.update_entry``): fail
margin = ``allowedDrop``, restarted every 24 h, window ``k`` spending
``alpha / (k (k + 1))``. The routers keep shadow-judging canary answers at the default
``sampleRate`` 0.1, so the pairwise gates compare the canary with the baseline on ~95 %
of each tier's requests, the ErrorRate gates compare the canary with the holdback.

Looks: the policy's interval is 1 minute; after promotion the study looks every
``look`` minutes (15 in the drift rows, 60 in the A/A rows, to keep a week of looks
affordable; the counters of those minutes arrive as one block). Fewer looks than the
operator's can only miss a crossing of the threshold between two looks, so the A/A
rows are a slightly optimistic estimate of the per-minute operator's false rollbacks
(the bound itself, Ville's inequality, holds for any number of looks).

Scenarios: identical models (A/A: any rollback during the watch is false), and a drift
that starts ``DRIFT_AFTER`` after promotion (the canary's answers in the 10 % tier turn
5 points worse, 2 beyond the 3 allowed): time from the drift's start to the rollback.

Writes ``bench/detection/operatorwatch.json`` and the table between the
``operatorwatch`` markers in ``docs/benchmarks.md``; ``tests/unit/test_detection_study.py``
checks the table against the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import operatorpath as op  # noqa: E402

from tierguard.api.enums import Phase  # noqa: E402
from tierguard.api.policy import RoutingPolicySpec  # noqa: E402
from tierguard.api.status import RoutingPolicyStatus  # noqa: E402
from tierguard.operator import preflight as pf  # noqa: E402
from tierguard.operator import rollout as r  # noqa: E402
from tierguard.operator.gatespecs import gate_specs  # noqa: E402

RESULTS = HERE / "operatorwatch.json"
BEGIN, END = "<!-- operatorwatch:begin -->", "<!-- operatorwatch:end -->"
DAYS = 7
DRIFT_AFTER = 24 * 60  # the drift starts on day 2 of the watch
DRIFT_LOSS = 0.05
DRIFT_TIER = len(op.TIERS) - 1  # the 10 % tier


@dataclass(frozen=True)
class WatchCell:
    key: str
    kind: str  # "aa" or "drift"
    icc: float
    rpm: float
    per_user_day: float = 20.0
    look: int = 15  # minutes between looks after promotion

    def rollout_cell(self) -> op.Cell:
        """Until promotion the two models are identical in both scenarios."""
        return op.Cell(self.key, "aa", self.icc, self.rpm, self.per_user_day)


@dataclass(frozen=True)
class WatchResult:
    promoted: bool  # the rollout reached promotion (the watch ran)
    rolled_back: bool  # during the watch
    minutes: int  # of watch until the rollback (or its horizon)
    after_drift: float | None  # minutes from the drift's start to the rollback
    window: int  # the watch window it ended in


def run_watch(cell: WatchCell, seed: int, spec: RoutingPolicySpec) -> WatchResult:
    rng = np.random.default_rng(seed)
    traffic = op.Traffic(cell.rollout_cell(), spec, rng)
    gates = gate_specs(spec)
    st = RoutingPolicyStatus()
    now = op.T0
    for i in range(op.HORIZON):
        now = op.T0 + timedelta(minutes=i)
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm.value, pf.mirror_rates(spec, st, gates))
        obs = traffic.observe(gates, now) if r.evaluation_due(spec, st, now) else None
        st = r.reconcile(spec, st, now, generation=1, observations=obs).status
        if st.phase != Phase.PROGRESSING:
            break
    if st.phase != Phase.PROMOTED:
        return WatchResult(False, False, 0, None, 0)
    promoted_at = now
    drifted = False
    watch = 0
    while watch < DAYS * 1440:
        if cell.kind == "drift" and not drifted and watch >= DRIFT_AFTER:
            traffic.set_loss(DRIFT_TIER, DRIFT_LOSS)
            drifted = True
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm.value, {}, minutes=cell.look)
        watch += cell.look
        now = promoted_at + timedelta(minutes=watch)
        obs = traffic.observe(gates, now) if r.evaluation_due(spec, st, now) else None
        st = r.reconcile(spec, st, now, generation=1, observations=obs).status
        if st.phase == Phase.ROLLED_BACK:
            after = float(watch - DRIFT_AFTER) if drifted else None
            return WatchResult(True, True, watch, after, _window(st))
    return WatchResult(True, False, watch, None, _window(st))


def _window(st: RoutingPolicyStatus) -> int:
    wins = [
        int(e["watch"]["window"])
        for e in st.gate_state.get("gates", {}).values()
        if isinstance(e, dict) and isinstance(e.get("watch"), dict)
    ]
    return max(wins, default=0)


CELLS: tuple[WatchCell, ...] = (
    WatchCell("watch-aa-0.02", "aa", 0.02, op.FULL_RPM, look=60),
    WatchCell("watch-aa-0.05-heavy", "aa", 0.05, op.FULL_RPM, op.HEAVY, look=60),
    WatchCell("watch-drift-0.02", "drift", 0.02, op.FULL_RPM),
    WatchCell("watch-drift-0.02-8000", "drift", 0.02, op.SIZED_RPM),
)


def compute(runs: int, seed: int, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
    spec = op.policy()
    out: list[dict[str, Any]] = []
    for cell in CELLS:
        if keys is not None and cell.key not in keys:
            continue
        started = time.time()
        base = seed + zlib.crc32(cell.key.encode()) % 1_000_000
        res = [run_watch(cell, base + k, spec) for k in range(runs)]
        watched = [x for x in res if x.promoted]
        n = max(1, len(watched))
        false_rb = [x for x in watched if x.rolled_back and x.after_drift is None]
        caught = [x.after_drift for x in watched if x.after_drift is not None]
        out.append(
            {
                "cell": cell.key,
                "scenario": cell.kind,
                "icc": cell.icc,
                "requests_per_minute": cell.rpm,
                "requests_per_user_day": cell.per_user_day,
                "look_minutes": cell.look,
                "runs": runs,
                "watched": len(watched),
                "false_rollback": len(false_rb) / n,
                "caught": len(caught) / n if cell.kind == "drift" else None,
                "median_minutes_to_catch": float(np.median(caught)) if caught else None,
                "max_minutes_to_catch": max(caught) if caught else None,
                "seconds": round(time.time() - started, 1),
            }
        )
        sys.stderr.write(f"{cell.key}: {out[-1]}\n")
    return {"seed": seed, "runs": runs, "days": DAYS, "results": out}


KINDS = {
    "aa": "identical models (A/A)",
    "drift": "5-point loss in the 10 % tier from day 2 of the watch",
}


def render(data: dict[str, Any]) -> str:
    rows = [
        f"Seed {data['seed']}; each rollout promoted through `rollout.reconcile` with the "
        f"policy defaults (holdback 5 %), then watched for {data['days']} days (a row's "
        "rollouts: the 'promoted and watched' column).",
        "",
        "| scenario | eligible req/min | requests per user a day | intra-user correlation "
        "| look every | promoted and watched | rolled back before any drift | drift caught "
        "| median time to catch | slowest catch |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for x in data["results"]:
        caught = "–" if x["caught"] is None else f"{x['caught']:.1%}"
        med, worst = x["median_minutes_to_catch"], x["max_minutes_to_catch"]
        rows.append(
            f"| {KINDS[x['scenario']]} | {x['requests_per_minute']:g} "
            f"| {x['requests_per_user_day']:g} | {x['icc']:g} | {x['look_minutes']} min "
            f"| {x['watched']} of {x['runs']} | {x['false_rollback']:.1%} | {caught} "
            f"| {'–' if med is None else f'{med:.0f} min'} "
            f"| {'–' if worst is None else f'{worst:.0f} min'} |"
        )
    return "\n".join(rows)


def merge(data: dict[str, Any]) -> None:
    """A subset's rows merged into the recorded ones (and the doc rewritten)."""
    data = op.merged_results(RESULTS, [c.key for c in CELLS], data)
    RESULTS.write_text(json.dumps(data, indent=1) + "\n")
    import sim

    sim.replace_block(op.DOC, BEGIN, END, render(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--cells", default="", help="comma-separated cell keys (default all)")
    parser.add_argument("--part", type=Path, help="write this subset's JSON here only")
    parser.add_argument("--merge", default="", help="comma-separated --part files to merge")
    args = parser.parse_args()
    if args.merge:
        for part in args.merge.split(","):
            merge(json.loads(Path(part).read_text()))
        return 0
    keys = tuple(args.cells.split(",")) if args.cells else None
    data = compute(args.runs, args.seed, keys)
    print(render(data))
    if args.part is not None:
        args.part.write_text(json.dumps(data, indent=1) + "\n")
    else:
        merge(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
