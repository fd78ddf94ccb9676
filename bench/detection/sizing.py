"""Samples needed per arm: the stage-sizing table in docs/statistics.md.

    PYTHONPATH=src .venv/bin/python bench/detection/sizing.py --seed 7
    PYTHONPATH=src .venv/bin/python bench/detection/sizing.py --seed 7 --margins
    PYTHONPATH=src .venv/bin/python bench/detection/sizing.py --seed 7 --ratio

For a base bad rate, a drop ``d`` (the SLO's allowed drop and the loss to catch), a
per-test alpha and a canary:control split, it reports the median number of *canary*
outcomes until (a) a real loss of ``d`` FAILs and (b) identical arms PASS (upper bound
within ``d``), through the operator's gate kernels, looking after every block.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from tierguard.operator import statistics as st

F64 = npt.NDArray[np.float64]

#: one block's look for every run: (bad_c, n_c, bad_t, n_t, past) -> whether the run's
#: test has crossed its level after this block, where past = (bad_c, n_c, bad_t, n_t)
#: summed over the earlier blocks (the step keeps its own running e-values).
BlockLook = Callable[[F64, F64, F64, F64, F64], npt.NDArray[np.bool_]]


def first_crossings(
    look: BlockLook,
    base: float,
    loss: float,
    ratio: int,
    runs: int,
    rng: np.random.Generator,
    *,
    enough: Callable[[F64], bool],
    block_canary: int,
    max_blocks: int,
) -> F64 | None:
    """Canary samples at which each of ``runs`` simulated rollouts first crossed (inf:
    not yet), drawing a block of ``block_canary`` canary outcomes (bad rate ``base +
    loss``) and ``ratio`` times as many control outcomes (``base``) at a time and looking
    after every block, until ``enough`` says so of the crossings; None after
    ``max_blocks``. Every study of samples to a decision shares this loop, so the same
    seed gives the same draws whatever the test."""
    n_t, n_c = block_canary, block_canary * ratio
    past = np.zeros((4, runs))
    first = np.full(runs, np.inf)
    nt_arr, nc_arr = np.full(runs, float(n_t)), np.full(runs, float(n_c))
    for b in range(1, max_blocks + 1):
        bc = rng.binomial(n_c, base, runs).astype(float)
        bt = rng.binomial(n_t, base + loss, runs).astype(float)
        hit = look(bc, nc_arr, bt, nt_arr, past)
        past += np.stack([bc, nc_arr, bt, nt_arr])
        first = np.where(hit & np.isinf(first), b * n_t, first)
        if enough(first):
            return first
    return None


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
    level = math.log(1 / alpha)
    log_e = np.zeros((runs, len(grid) if side == "fail" else 1))

    def look(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> npt.NDArray[np.bool_]:
        nonlocal log_e
        if side == "fail":
            log_e += st.fail_block_log_e(bc, nc, bt, nt, past[0], past[1], grid, fail_margin)
            return st.log_mean_exp(log_e) >= level
        log_e += st.pass_block_log_e(bc, nc, bt, nt, past[0], past[1], past[2], past[3], (drop,))
        return log_e[:, 0] >= level

    first = first_crossings(
        look,
        base,
        true_drop,
        ratio,
        runs,
        rng,
        enough=lambda f: bool(np.mean(np.isfinite(f)) > 0.5),
        block_canary=block_canary,
        max_blocks=max_blocks,
    )
    return math.inf if first is None else float(np.median(first))


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


def detection_samples(
    base: float,
    drop: float,
    alpha: float,
    ratio: int,
    loss: float,
    runs: int,
    rng: np.random.Generator,
    fail_margin: float,
    block_canary: int = 10,
    max_blocks: int = 4000,
    power: float = 0.8,
) -> tuple[float, float]:
    """Canary samples by which the fail side has caught a real ``loss`` in a share
    ``power`` of the runs (the e-process's sample size at that power), looking after
    every block; and, from the same runs, the median samples to detection (the typical
    rollout's, which a sequential test stops early)."""
    grid = st.fail_grid(drop)
    level = math.log(1 / alpha)
    log_fail = np.zeros((runs, len(grid)))

    def look(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> npt.NDArray[np.bool_]:
        nonlocal log_fail
        log_fail += st.fail_block_log_e(bc, nc, bt, nt, past[0], past[1], grid, fail_margin)
        return st.log_mean_exp(log_fail) >= level

    first = first_crossings(
        look,
        base,
        loss,
        ratio,
        runs,
        rng,
        enough=lambda f: bool(np.mean(np.isfinite(f)) >= power),
        block_canary=block_canary,
        max_blocks=max_blocks,
    )
    if first is None:
        return math.inf, math.inf
    return (
        float(np.quantile(first, power, method="inverted_cdf")),
        float(np.quantile(first, 0.5, method="inverted_cdf")),
    )


def fixed_sample_size(
    base: float, loss: float, margin: float, alpha: float, ratio: int, power: float = 0.8
) -> float:
    """Canary samples a one-shot one-sided z-test of "loss <= margin" needs at level
    ``alpha`` for ``power`` against the true ``loss`` (control arm ``ratio`` times larger;
    normal approximation, unpooled variances) -- the textbook fixed-sample design."""
    from statistics import NormalDist

    z_a, z_b = NormalDist().inv_cdf(1 - alpha), NormalDist().inv_cdf(power)
    p_t = base + loss
    var = p_t * (1 - p_t) + base * (1 - base) / ratio  # per canary sample
    return (z_a + z_b) ** 2 * var / (loss - margin) ** 2


#: (base bad rate, allowed drop, true loss) of the samples-to-detection table
RATIO_CASES = ((0.10, 0.03, 0.05), (0.10, 0.03, 0.10), (0.02, 0.02, 0.05))


def ratio_table(seed: int, runs: int) -> str:
    """Samples to detection (80 % power) of the operator's fail side divided by the
    fixed-sample test's, same alpha, margin and power; and the median rollout's."""
    rng = np.random.default_rng(seed)
    rows = [
        "| base bad rate | allowed drop (margin) | true loss | alpha per test "
        "| split canary:control | e-process, 80 % caught by | fixed-sample test n "
        "| ratio | e-process, median | median ratio |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for base, drop, loss in RATIO_CASES:
        margin = st.default_fail_margin(drop)
        for alpha in (0.05, 0.01 / 8):
            for ratio in (1, 19):
                seq, med = detection_samples(base, drop, alpha, ratio, loss, runs, rng, margin)
                fixed = fixed_sample_size(base, loss, margin, alpha, ratio)
                rows.append(
                    f"| {base:.0%} | {100 * drop:g} pt ({100 * margin:g} pt) | {100 * loss:g} pt "
                    f"| {alpha:.4g} | 1:{ratio} | {seq:,.0f} | {fixed:,.0f} "
                    f"| {seq / fixed:.2f}× | {med:,.0f} | {med / fixed:.2f}× |"
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
    parser.add_argument(
        "--ratio", action="store_true", help="samples to detection vs a fixed-sample test"
    )
    args = parser.parse_args()
    if args.ratio:
        print(ratio_table(args.seed, args.runs))
    elif args.margins:
        print(margin_table(args.seed, args.runs))
    else:
        print(table(args.seed, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
