"""Samples needed per arm: the stage-sizing table in docs/statistics.md.

    PYTHONPATH=src .venv/bin/python bench/detection/sizing.py --seed 7
    PYTHONPATH=src .venv/bin/python bench/detection/sizing.py --seed 7 --margins

For a base bad rate, a drop ``d`` (the SLO's allowed drop and the loss to catch), a
per-test alpha and a canary:control split, it reports the median number of *canary*
outcomes until (a) a real loss of ``d`` FAILs and (b) identical arms PASS (upper bound
within ``d``), through the operator's gate kernels, looking after every block.
"""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from tierguard.operator import statistics as st


def median_samples(
    base: float,
    drop: float,
    alpha: float,
    ratio: int,
    true_drop: float,
    side: str,
    runs: int,
    rng: np.random.Generator,
    block_canary: int = 10,
    max_blocks: int = 3000,
    fail_margin: float = 0.0,
) -> float:
    """Median canary outcomes until the first FAIL (side="fail") or PASS (side="pass")."""
    grid = st.fail_grid(drop)
    n_t, n_c = block_canary, block_canary * ratio
    log_fail = np.zeros((runs, len(grid)))
    log_pass = np.zeros((runs, 1))
    past = np.zeros((4, runs))
    first = np.full(runs, np.inf)
    level = math.log(1 / alpha)
    nt_arr, nc_arr = np.full(runs, float(n_t)), np.full(runs, float(n_c))
    for b in range(1, max_blocks + 1):
        bc = rng.binomial(n_c, base, runs).astype(float)
        bt = rng.binomial(n_t, base + true_drop, runs).astype(float)
        if side == "fail":
            log_fail += st.fail_block_log_e(
                bc, nc_arr, bt, nt_arr, past[0], past[1], grid, fail_margin
            )
            hit = st.log_mean_exp(log_fail) >= level
        else:
            log_pass += st.pass_block_log_e(
                bc, nc_arr, bt, nt_arr, past[0], past[1], past[2], past[3], (drop,)
            )
            hit = log_pass[:, 0] >= level
        past += np.stack([bc, nc_arr, bt, nt_arr])
        first = np.where(hit & np.isinf(first), b * n_t, first)
        if np.mean(np.isfinite(first)) > 0.5:
            return float(np.median(first))
    return math.inf


def table(seed: int, runs: int) -> str:
    rng = np.random.default_rng(seed)
    rows = [
        "| base bad rate | drop | alpha per test | split canary:control "
        "| canary samples to FAIL a real drop (median) "
        "| canary samples to PASS identical arms (median) |",
        "|---|---|---|---|---|---|",
    ]
    for base in (0.10, 0.02):
        for drop in (0.02, 0.03, 0.05, 0.10):
            if base == 0.02 and drop == 0.10:
                continue
            for alpha in (0.05, 0.01 / 8):
                for ratio in (1, 19):
                    fail = median_samples(base, drop, alpha, ratio, drop, "fail", runs, rng)
                    ok = median_samples(base, drop, alpha, ratio, 0.0, "pass", runs, rng)
                    rows.append(
                        f"| {base:.0%} | {100 * drop:g} pt | {alpha:.4g} | 1:{ratio} "
                        f"| {fail:,.0f} | {ok:,.0f} |"
                    )
            sys.stderr.write(".")
            sys.stderr.flush()
    sys.stderr.write("\n")
    return "\n".join(rows)


def margin_table(seed: int, runs: int) -> str:
    """The sample cost of the fail margin: median canary samples until a real loss FAILs,
    for margin 0, half the allowed drop (the default) and the whole allowed drop."""
    rng = np.random.default_rng(seed)
    drop, base = 0.03, 0.10
    rows = [
        "| true loss | alpha per test | split canary:control "
        "| margin 0 | margin 1.5 pt (default) | margin 3 pt (= allowed drop) |",
        "|---|---|---|---|---|---|",
    ]
    for loss in (0.03, 0.05, 0.10):
        for alpha in (0.05, 0.01 / 8):
            for ratio in (1, 19):
                cells = []
                for margin in (0.0, drop / 2, drop):
                    if loss <= margin:
                        cells.append("never (within margin)")
                        continue
                    n = median_samples(
                        base, drop, alpha, ratio, loss, "fail", runs, rng, fail_margin=margin
                    )
                    cells.append(f"{n:,.0f}" if math.isfinite(n) else "> 30,000")
                rows.append(
                    f"| {100 * loss:g} pt | {alpha:.4g} | 1:{ratio} | " + " | ".join(cells) + " |"
                )
        sys.stderr.write(".")
        sys.stderr.flush()
    sys.stderr.write("\n")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument(
        "--margins", action="store_true", help="the fail-margin cost table (allowed drop 3 pt)"
    )
    args = parser.parse_args()
    print(margin_table(args.seed, args.runs) if args.margins else table(args.seed, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
