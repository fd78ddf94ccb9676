"""Detection study: how fast a one-tier quality loss is caught, how often identical
models are rolled back — tierguard's gates against the usual alternatives.

    PYTHONPATH=src .venv/bin/python bench/detection/run.py --seed 20261123

writes ``bench/detection/results.json``, ``docs/img/detection.png`` and the table
between the ``detection`` markers in ``docs/benchmarks.md``. The test
``tests/unit/test_detection_study.py`` recomputes a subset with fewer runs and checks the
recorded figures against it and the docs against the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(HERE))

import sim  # noqa: E402

RESULTS = HERE / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
PLOT = ROOT / "docs" / "img" / "detection.png"
BEGIN, END = "<!-- detection:begin -->", "<!-- detection:end -->"


def sized_seed(sc: sim.Scenario) -> sim.Scenario:
    """The seed's traffic with the policy sized for it: every tier's canary share at
    least 25 % and half of the requests shadow-judged during the rollout."""
    sig = (sim.Signal("shadow", 0.5, 0.03, True), *sc.signals[1:])
    return replace(
        sc, name=sc.name.replace("quality", "sized policy, quality"), min_share=0.25, signals=sig
    )


def configs() -> list[tuple[str, sim.Scenario, sim.Scenario, sim.Scenario]]:
    """(key, A/A scenario, drop scenario, Pareto scenario) rows of the study."""
    aa, drop, pareto = (sim.study_scenarios(k) for k in ("aa", "drop", "pareto"))
    rows = [(f"c{i}", a, d, p) for i, (a, d, p) in enumerate(zip(aa, drop, pareto, strict=True))]
    seed_i = 1
    rows.append(
        ("seed-sized", sized_seed(aa[seed_i]), sized_seed(drop[seed_i]), sized_seed(pareto[seed_i]))
    )
    return rows


#: Which (config, scenario kind) pairs the quick recomputation covers (fast ones).
QUICK = {("c3", "aa"), ("c3", "drop"), ("c3", "pareto")}


class Progress:
    """A plain text progress bar on stderr (no dependency)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.done, self.enabled, self.start = total, 0, enabled, time.time()

    def __call__(self, n: int) -> None:
        before = int(100 * self.done / self.total)
        self.done += n
        if not self.enabled or int(100 * self.done / self.total) == before:
            return
        width = 40
        filled = int(width * self.done / self.total)
        rate = time.time() - self.start
        sys.stderr.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} rollouts, {rate:5.0f} s"
        )
        sys.stderr.flush()


def jobs(quick: bool) -> list[tuple[str, str, sim.Method, sim.Scenario]]:
    out: list[tuple[str, str, sim.Method, sim.Scenario]] = []
    for key, aa, drop, pareto in configs():
        for kind, sc in (("aa", aa), ("drop", drop), ("pareto", pareto)):
            if quick and (key, kind) not in QUICK:
                continue
            methods: tuple[sim.Method, ...] = (
                sim.METHODS if kind != "pareto" else ("tierguard", "aggregate")
            )
            if kind == "pareto" and key not in ("c2", "c3", "seed-sized"):
                continue
            out.extend((key, kind, m, sc) for m in methods)
    return out


def compute(runs_aa: int, runs_drop: int, seed: int, quick: bool, progress: bool) -> dict[str, Any]:
    todo = jobs(quick)
    total = sum(runs_aa if kind == "aa" else runs_drop for _, kind, _, _ in todo)
    bar = Progress(total, progress)
    results: list[dict[str, Any]] = []
    for key, kind, method, sc in todo:
        runs = runs_aa if kind == "aa" else runs_drop
        job_seed = seed + zlib.crc32(f"{key}/{kind}/{method}".encode()) % 1_000_000
        out = sim.simulate(sc, method, runs, job_seed, progress=bar)
        results.append(
            {
                "config": key,
                "scenario": kind,
                "method": method,
                "name": sc.name,
                **sim.summarise(out, sc),
            }
        )
    if progress:
        sys.stderr.write("\n")
    sc0 = configs()[0][1]
    return {
        "seed": seed,
        "runs_aa": runs_aa,
        "runs_drop": runs_drop,
        "policy": {
            k: v
            for k, v in asdict(sc0).items()
            if k not in ("name", "requests_per_minute", "quality", "drop", "other_tiers_gain")
        },
        "results": results,
    }


# ---------------------------------------------------------------------------- report


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _minutes(x: float | None) -> str:
    if x is None:
        return "–"
    return f"{x / 60:.1f} h" if x >= 120 else f"{x:.0f} min"


def _stage(row: dict[str, Any]) -> str:
    by = row["rolled_back_by_stage"]
    if row["rolled_back"] == 0:
        return "–"
    first = by[0] / row["rolled_back"]
    return f"{100 * first:.0f} % in 1st"


def render(data: dict[str, Any]) -> str:
    """The markdown table(s) placed between the markers in docs/benchmarks.md."""
    by = {(r["config"], r["scenario"], r["method"]): r for r in data["results"]}
    keys = list(dict.fromkeys(r["config"] for r in data["results"]))
    names = {r["config"]: r["name"] for r in data["results"]}
    lines = [
        f"Seed {data['seed']}; {data['runs_aa']} rollouts per cell for identical arms, "
        f"{data['runs_drop']} for the loss scenarios.",
        "",
        "| traffic (eligible req/min), base quality | gate | false rollbacks (A/A) "
        "| caught: 5-pt drop in 10 % tier | where caught | median time to catch "
        "| median canary samples at catch | A/A promoted |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key in keys:
        for method in sim.METHODS:
            aa = by.get((key, "aa", method))
            dr = by.get((key, "drop", method))
            if aa is None and dr is None:
                continue
            lines.append(
                f"| {names.get(key, key)} | {sim.METHOD_LABELS[method]} "
                f"| {_pct(aa['rolled_back']) if aa else '–'} "
                f"| {_pct(dr['rolled_back']) if dr else '–'} "
                f"| {_stage(dr) if dr else '–'} "
                f"| {_minutes(dr['median_minutes_to_rollback']) if dr else '–'} "
                f"| {dr['median_canary_samples_at_rollback'] or '–' if dr else '–'} "
                f"| {_pct(aa['promoted']) if aa else '–'} |"
            )
    lines += [
        "",
        "Pareto trap (the 10 % tier loses 5 points, the other tiers gain 0.6: the "
        "aggregate quality moves by -0.04 points):",
        "",
        "| traffic | gate | rolled back | promoted | paused |",
        "|---|---|---|---|---|",
    ]
    for key in keys:
        for method in ("tierguard", "aggregate"):
            row = by.get((key, "pareto", method))
            if row is None:
                continue
            lines.append(
                f"| {names.get(key, key)} | {sim.METHOD_LABELS[method]} "
                f"| {_pct(row['rolled_back'])} | {_pct(row['promoted'])} "
                f"| {_pct(row['paused'])} |"
            )
    return "\n".join(lines)


def write_doc(table: str) -> None:
    sim.replace_block(DOC, BEGIN, END, table, heading="## Detection study")


def _short(name: str) -> str:
    """'seed 003 (...), 75 req/min, sized policy, quality 90%' -> a 3-line tick label."""
    parts = [p.strip() for p in name.split(",")]
    head = "seed 003" if parts[0].startswith("seed") else parts[0]
    return "\n".join([head, *parts[1:]]).replace("quality ", "q ")


def plot(data: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(r["config"], r["scenario"], r["method"]): r for r in data["results"]}
    keys = [
        k
        for k in dict.fromkeys(r["config"] for r in data["results"])
        if (k, "aa", "tierguard") in by
    ]
    labels = [_short(by[(k, "aa", "tierguard")]["name"]) for k in keys]
    fig, axes = plt.subplots(1, 2, figsize=(14, 6), sharey=True)
    width = 0.16
    for ax, kind, title in (
        (axes[0], "aa", "False rollbacks, identical models"),
        (axes[1], "drop", "Caught: 5-point drop in the 10 % tier"),
    ):
        for j, method in enumerate(sim.METHODS):
            vals = [
                100 * by[(k, kind, method)]["rolled_back"] if (k, kind, method) in by else 0.0
                for k in keys
            ]
            xs = [i + (j - (len(sim.METHODS) - 1) / 2) * width for i in range(len(keys))]
            bars = ax.bar(xs, vals, width, label=sim.METHOD_LABELS[method])
            if method == "tierguard":
                ax.bar_label(bars, fmt="%.1f", fontsize=7, padding=2)
        ax.set_xticks(range(len(keys)), labels, fontsize=8)
        ax.set_title(title)
        ax.set_ylabel("% of rollouts rolled back")
        ax.grid(axis="y", alpha=0.3)
    axes[0].axhline(1.0, color="k", ls="--", lw=0.8)
    axes[1].axhline(95.0, color="k", ls="--", lw=0.8)
    handles, names = axes[0].get_legend_handles_labels()
    fig.legend(handles, names, loc="lower center", ncol=len(sim.METHODS), fontsize=8)
    fig.suptitle(
        f"tierguard detection study (seed {data['seed']}, "
        f"{data['runs_aa']}/{data['runs_drop']} rollouts per bar)"
    )
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=110)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--runs-aa", type=int, default=500)
    parser.add_argument("--runs-drop", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="only the fast subset")
    parser.add_argument("--no-write", action="store_true", help="print, write nothing")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument(
        "--replot",
        action="store_true",
        help="re-render docs and plot from the recorded results.json",
    )
    args = parser.parse_args(argv)
    if args.replot:
        data = json.loads(RESULTS.read_text())
        write_doc(render(data))
        plot(data)
        return 0
    start = time.time()
    data = compute(args.runs_aa, args.runs_drop, args.seed, args.quick, not args.no_progress)
    data["seconds"] = round(time.time() - start)
    table = render(data)
    print(table)
    if not args.no_write:
        RESULTS.write_text(json.dumps(data, indent=1) + "\n")
        write_doc(table)
        plot(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
