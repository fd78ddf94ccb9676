"""Slice study: a loss that hides below the tier, caught by slice gates (issue 17).

    PYTHONPATH=src .venv/bin/python bench/detection/slices.py --seed 20261202

One tier ("simple") at 300 canary-eligible requests/min, sliced by ``category`` into 10
declared values plus ``other``: ``billing_status`` is 10 % of the tier, nine more values
9.5 % each, ``other`` 4.5 %. Signals and SLOs as in the main study (shadow judge on 25 %
of requests, allowed drop 3 points; errors, allowed drop 2 points), family alpha 0.01.
Each rollout is judged two ways, with the operator's gate kernels
(``tierguard.operator.statistics`` through ``sim._Gates``):

* **tier gates only** (the behaviour without ``analysis.slices``): the family budget over
  the tier's two gates;
* **tier + slice gates**: the budget split as the operator splits it
  (``tierguard.operator.family.split_alpha``: half to the tier's gates, half shared by the
  22 slice gates). Slice gates can only roll back; promotion waits for the tier's gates
  and minimum samples (slices without ``minSamples`` never hold a stage).

Scenarios: identical models (A/A); a 15-point loss in ``billing_status`` only (1.5 points
on the tier, inside the 3-point allowed drop and at the default fail margin); a 5-point
loss across the whole tier (to price the slice gates: the tier gate now has half the
alpha). The sample cost of slices is the ratio of the median canary outcomes (shadow
judgements) the tier gate needed to promote (A/A) or to roll back (tier-wide loss).

Writes ``bench/detection/slices.json`` and the table between the ``slices`` markers in
``docs/benchmarks.md``; ``tests/unit/test_detection_study.py`` checks the docs against
the JSON (the study itself takes minutes; the suite does not rerun it).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sim  # noqa: E402
import stages  # noqa: E402

from tierguard.operator.family import SLICE_SHARE, split_alpha  # noqa: E402

RESULTS = HERE / "slices.json"
DOC = HERE.parent.parent / "docs" / "benchmarks.md"
BEGIN, END = "<!-- slices:begin -->", "<!-- slices:end -->"

RPM = 300.0
VALUES: tuple[str, ...] = ("billing_status", *(f"category_{i}" for i in range(2, 11)), "other")
SHARES: tuple[float, ...] = (0.10, *([0.095] * 9), 0.045)
SLICE_LOSS = 0.15
TIER_LOSS = 0.05
Kind = Literal["aa", "slice", "tier"]
Gating = Literal["tier", "slices"]
F64 = npt.NDArray[np.float64]


def scenario() -> sim.Scenario:
    """The tier as a sim.Scenario whose "tiers" are the slice values."""
    return sim.Scenario(
        name=f"simple tier, {RPM:g} req/min, 10 slice values + other",
        requests_per_minute=RPM,
        tier_shares=SHARES,
        drop_tier=0,
    )


def rates(sc: sim.Scenario, kind: Kind) -> tuple[F64, F64]:
    """(control, canary) bad rates per slice value and signal."""
    if kind == "slice":
        return replace(sc, drop=SLICE_LOSS).bad_rates()
    control, canary = sc.bad_rates()
    if kind == "tier":
        quality = [j for j, s in enumerate(sc.signals) if s.quality_signal]
        canary[:, quality] += TIER_LOSS
    return control, canary


def simulate(kind: Kind, gating: Gating, runs: int, seed: int) -> dict[str, Any]:
    sc = scenario()
    rng = np.random.default_rng(seed)
    tier_sc = replace(sc, tier_shares=(1.0,))
    tier = sim._Gates("tierguard", tier_sc, runs)
    slices = sim._Gates("tierguard", sc, runs) if gating == "slices" else None
    split = split_alpha(sc.family_alpha, tier_sc.n_gates, sc.n_gates if slices else 0)
    for g, alpha in ((tier, split.tier), (slices, split.slice)):
        if g is not None:
            g.alpha, g.level = alpha, float(np.log(1.0 / alpha))
    primary = next(j for j, sig in enumerate(sc.signals) if sig.quality_signal)
    by_slice = np.zeros(runs, dtype=bool)
    samples = np.zeros(runs)
    failing: dict[str, stages.Bools] = {}  # this minute's verdicts: tier gates, slice gates

    def judge(blk: F64) -> tuple[stages.Bools, stages.Bools]:
        """The tier's gates see the slice values summed; slice gates can only roll back."""
        failed_t, passed = tier.add(blk.sum(axis=2, keepdims=True))
        failed_s = slices.add(blk)[0] if slices is not None else np.zeros_like(failed_t)
        failing["tier"], failing["slice"] = failed_t, failed_s
        return failed_t | failed_s, passed

    def keep(idx: stages.Ints) -> None:
        tier.keep(idx)
        if slices is not None:
            slices.keep(idx)

    def ended(d: stages.Ints, done: stages.Bools, failed: stages.Bools) -> None:
        by_slice[d] = failing["slice"][done] & ~failing["tier"][done]
        samples[d] = tier.cum[3][done][:, 0, primary]

    result, end_stage, _ = stages.run_stages(
        # minimum samples per arm on the tier; no stage pauses before the horizon
        replace(sc, max_step_minutes=sc.horizon_minutes),
        runs,
        stages.independent_traffic(sc, rng, rates(sc, kind)),
        judge,
        keep,
        ended,
        stage_counts=lambda blk: blk.sum(axis=2, keepdims=True),
    )
    rb, pr = result == stages.ROLLED_BACK, result == stages.PROMOTED
    return {
        "rolled_back": float(rb.mean()),
        "promoted": float(pr.mean()),
        "paused": float((result == stages.PAUSED).mean()),
        "rolled_back_by_slice_gate": float(by_slice.mean()),
        "rolled_back_by_stage": [float(np.mean(rb & (end_stage == i))) for i in range(5)],
        "median_canary_samples_at_rollback": float(np.median(samples[rb])) if rb.any() else None,
        "median_canary_samples_at_promotion": float(np.median(samples[pr])) if pr.any() else None,
        "runs": runs,
        "alpha_tier_gate": split.tier,
        "alpha_slice_gate": split.slice,
    }


CELLS: tuple[tuple[Kind, Gating], ...] = tuple(
    (k, g) for k in ("aa", "slice", "tier") for g in ("tier", "slices")
)


def compute(runs_aa: int, runs: int, seed: int) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for kind, gating in CELLS:
        started = time.time()
        n = runs_aa if kind == "aa" else runs
        res = simulate(kind, gating, n, seed + zlib.crc32(f"{kind}/{gating}".encode()) % 10**6)
        out.append({"scenario": kind, "gates": gating, **res})
        sys.stderr.write(
            f"{kind}/{gating}: {res['rolled_back']:.3f} rolled back "
            f"({time.time() - started:.0f} s)\n"
        )
    by = {(r["scenario"], r["gates"]): r for r in out}

    def ratio(kind: str, key: str) -> float | None:
        a, b = by[(kind, "slices")][key], by[(kind, "tier")][key]
        return None if a is None or b is None else a / b

    return {
        "seed": seed,
        "runs_aa": runs_aa,
        "runs": runs,
        "requests_per_minute": RPM,
        "values": list(VALUES),
        "shares": list(SHARES),
        "slice_share_of_alpha": SLICE_SHARE,
        "family_alpha": scenario().family_alpha,
        "results": out,
        "cost_ratio_promotion": ratio("aa", "median_canary_samples_at_promotion"),
        "cost_ratio_rollback": ratio("tier", "median_canary_samples_at_rollback"),
    }


def render(data: dict[str, Any]) -> str:
    kinds = {
        "aa": "identical models (A/A)",
        "slice": f"{SLICE_LOSS * 100:g}-point loss in billing_status (10 % of the tier)",
        "tier": f"{TIER_LOSS * 100:g}-point loss across the tier",
    }
    gates = {"tier": "tier gates only", "slices": "tier + 22 slice gates"}
    rows = [
        f"Seed {data['seed']}; {data['runs_aa']} A/A rollouts, {data['runs']} per loss row; "
        f"{data['requests_per_minute']:g} eligible requests/min in the tier, 10 slice "
        f"values + other; family alpha {data['family_alpha']:g}, "
        f"{data['slice_share_of_alpha']:.0%} of it to the slice gates.",
        "",
        "| scenario | gates | rolled back | by a slice gate | promoted | paused "
        "| median canary judgements to decide |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in data["results"]:
        n = r["median_canary_samples_at_rollback"]
        if r["scenario"] == "aa":
            n = r["median_canary_samples_at_promotion"]
        rows.append(
            f"| {kinds[r['scenario']]} | {gates[r['gates']]} | {r['rolled_back']:.1%} "
            f"| {r['rolled_back_by_slice_gate']:.1%} | {r['promoted']:.1%} "
            f"| {r['paused']:.1%} | {'–' if n is None else f'{n:.0f}'} |"
        )
    rows += [
        "",
        f"Sample cost of the slice gates (tier + slices over tier only, median canary "
        f"judgements): {data['cost_ratio_promotion']:.2f}x to promote identical models, "
        f"{data['cost_ratio_rollback']:.2f}x to roll back a tier-wide loss.",
    ]
    return "\n".join(rows)


def write_doc(data: dict[str, Any]) -> None:
    sim.replace_block(DOC, BEGIN, END, render(data))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--runs-aa", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    started = time.time()
    data = compute(args.runs_aa, args.runs, args.seed)
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
