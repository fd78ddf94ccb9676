"""Fail-side bets against a fixed-sample test: what else was tried, and the floor.

    PYTHONPATH=src .venv/bin/python bench/detection/bets.py --seed 7 --runs 1000

The operator's fail side bets on an equal mixture of four alternatives (1/2, 1, 2 and 4
times the allowed drop beyond the fail margin) with a predictable plug-in control rate
(:func:`tierguard.operator.evalues.fail_block_log_e`). ``sizing.py --ratio`` reports its
samples to detection (80 % power, a look every 10 canary outcomes) as a ratio to the
one-sided fixed-sample z-test at the same alpha, margin and power. This script runs the
same cases through other bets that keep anytime validity
(other grids and weights, a predictable plug-in bet on the effect, plug-in and grid
mixed) and through two oracles that are *not* tests -- they are told the true loss (and
the true control rate) -- to show the floor no bet can beat, next to the Brownian-motion
floor of :func:`sprt_ratio`. The table goes to docs/statistics.md ("What
peeking-safety costs"). Every bet sees the same draws in a case (common random numbers),
so the columns differ by the bet only; the operator's column is the computation of
``sizing.py --ratio`` with other draws.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from statistics import NormalDist

import numpy as np
import numpy.typing as npt
import sizing

from tierguard.operator import evalues as ev
from tierguard.operator import statistics as st

F64 = npt.NDArray[np.float64]
#: one block's log e-value per run and alternative from (bad_c, n_c, bad_t, n_t, past)
#: where past = (bad_c, n_c, bad_t, n_t) before the block; the drop and margin are bound.
Kernel = Callable[[F64, F64, F64, F64, F64], F64]
#: (base, allowed drop, fail margin, true loss) -> (kernel, mixture weights)
Bet = Callable[[float, float, float, float], tuple[Kernel, F64]]

#: sizing.py's cases, and a loss at the allowed drop itself (the smallest the SLO forbids)
CASES = (*sizing.RATIO_CASES, (0.10, 0.03, 0.03))
ALPHAS = (0.05, 0.01 / 8)
SPLITS = (1, 19)


def grid_bet(multiples: tuple[float, ...], weights: tuple[float, ...] | None = None) -> Bet:
    """A mixture of fixed alternatives (multiples of the allowed drop beyond the margin)
    through the operator's kernel; equal weights unless given."""

    def make(base: float, drop: float, margin: float, loss: float) -> tuple[Kernel, F64]:
        grid = tuple(min(k * drop, 0.5) for k in multiples)

        def kernel(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> F64:
            return ev.fail_block_log_e(bc, nc, bt, nt, past[0], past[1], grid, margin)

        w = np.asarray(weights if weights is not None else [1.0] * len(grid), dtype=float)
        return kernel, w / w.sum()

    return make


def plugin_bet(shrink: float, with_grid: tuple[float, ...] = ()) -> Bet:
    """A predictable plug-in bet on the effect (as the pass side's, and aGRAPA-like):
    the alternative is the canary's rate from earlier blocks, shrunk towards the control
    rate + margin + allowed drop by ``shrink`` samples, kept at least half the allowed
    drop beyond the margin; optionally mixed equally with a grid of fixed alternatives."""

    def make(base: float, drop: float, margin: float, loss: float) -> tuple[Kernel, F64]:
        grid = tuple(min(k * drop, 0.5) for k in with_grid)

        def kernel(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> F64:
            q_c = ev.plugin_control_rate(past[0], past[1])
            q_t_hat = (past[2] + shrink * (q_c + margin + drop)) / (past[3] + shrink)
            d = np.clip(q_t_hat - q_c - margin, 0.5 * drop, 0.5)
            q_t = np.minimum(q_c + margin + d, 0.995)
            own = ev.shifted_block_log_e(bc, nc, bt, nt, q_c, q_t, margin)
            own = np.where(q_t - q_c > margin + 1e-9, own, 0.0)[..., None]
            if not grid:
                return np.asarray(own, dtype=float)
            fixed = ev.fail_block_log_e(bc, nc, bt, nt, past[0], past[1], grid, margin)
            return np.concatenate([own, fixed], axis=-1)

        return kernel, np.full(1 + len(grid), 1.0 / (1 + len(grid)))

    return make


def oracle_bet(known_control: bool) -> Bet:
    """NOT a test: one alternative at the true loss (and, if ``known_control``, the true
    control rate instead of the plug-in) -- the likelihood ratio no bet can beat."""

    def make(base: float, drop: float, margin: float, loss: float) -> tuple[Kernel, F64]:
        def kernel(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> F64:
            if known_control:
                q_c = np.full(bc.shape, base)
            else:
                q_c = ev.plugin_control_rate(past[0], past[1])
            q_t = np.minimum(q_c + loss, 0.995)
            own = ev.shifted_block_log_e(bc, nc, bt, nt, q_c, q_t, margin)
            return np.asarray(own, dtype=float)[..., None]

        return kernel, np.ones(1)

    return make


#: column title -> bet; the first is the operator's.
BETS: dict[str, Bet] = {
    "operator: ½,1,2,4 × drop, equal": grid_bet((0.5, 1, 2, 4)),
    "1,2,4 × drop": grid_bet((1, 2, 4)),
    "½,1,2,4 weighted 1:2:2:1": grid_bet((0.5, 1, 2, 4), (1, 2, 2, 1)),
    "70 % on 1× drop, 10 % on ½,2,4": grid_bet((0.5, 1, 2, 4), (1, 7, 1, 1)),
    "8 alternatives ½…5.6 × drop (×√2)": grid_bet((0.5, 0.7, 1, 1.4, 2, 2.8, 4, 5.6)),
    "plug-in on the effect": plugin_bet(200.0),
    "plug-in + operator's 4": plugin_bet(100.0, (0.5, 1, 2, 4)),
    "oracle: true loss (not a test)": oracle_bet(known_control=False),
    "oracle: true loss and control rate (not a test)": oracle_bet(known_control=True),
}


def detection_samples(
    bet: Bet,
    base: float,
    drop: float,
    alpha: float,
    ratio: int,
    loss: float,
    runs: int,
    rng: np.random.Generator,
    block_canary: int = 10,
    max_blocks: int = 4000,
    power: float = 0.8,
) -> float:
    """As :func:`sizing.detection_samples` (the same draws), for any bet."""
    margin = st.default_fail_margin(drop)
    kernel, weights = bet(base, drop, margin, loss)
    log_w = np.log(weights)
    level = math.log(1 / alpha)
    log_e = np.zeros((runs, len(weights)))

    def look(bc: F64, nc: F64, bt: F64, nt: F64, past: F64) -> npt.NDArray[np.bool_]:
        nonlocal log_e
        log_e += kernel(bc, nc, bt, nt, past)
        return st.log_mean_exp(log_e + log_w) + math.log(len(weights)) >= level

    first = sizing.first_crossings(
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
    return math.inf if first is None else float(np.quantile(first, power, method="inverted_cdf"))


def sprt_ratio(
    alpha: float, extra_nats: float = 0.0, power: float = 0.8, quantile: float | None = None
) -> float:
    """The floor in the Brownian limit: the ``power`` quantile of the time a log
    likelihood ratio with the true alternative (drift mu = KL, variance 2 mu per sample)
    takes to reach ``log(1/alpha) + extra_nats``, looking continuously, divided by the
    fixed-sample z-test's n at the same alpha and power. The hitting time is inverse
    Gaussian (mean a/mu, shape a^2/(2 mu)); ``extra_nats`` is what a mixture pays for not
    knowing the effect (log 4 for four equal alternatives, at best). ``quantile`` (default
    ``power``) is the quantile of the hitting time compared with the fixed n."""
    nd = NormalDist()
    a = math.log(1 / alpha) + extra_nats
    mean, shape = a, a * a / 2.0  # mu = 1

    def cdf(x: float) -> float:
        s = math.sqrt(shape / x)
        return nd.cdf(s * (x / mean - 1)) + math.exp(2 * shape / mean) * nd.cdf(-s * (x / mean + 1))

    lo, hi = 1e-9, 100.0 * mean
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if cdf(mid) < (power if quantile is None else quantile) else (lo, mid)
    fixed = (nd.inv_cdf(1 - alpha) + nd.inv_cdf(power)) ** 2 / 2.0
    return 0.5 * (lo + hi) / fixed


def table(seed: int, runs: int) -> str:
    """One row per case, one column per bet: samples to 80 % detection / fixed n."""
    names = list(BETS)
    head = "| case (base, drop, loss, alpha, split) | " + " | ".join(names) + " |"
    rows = [head, "|---" * (len(names) + 1) + "|"]
    for base, drop, loss in CASES:
        margin = st.default_fail_margin(drop)
        for alpha in ALPHAS:
            for ratio in SPLITS:
                fixed = sizing.fixed_sample_size(base, loss, margin, alpha, ratio)
                cells = []
                for bet in BETS.values():
                    # common random numbers: every bet sees the same draws in a case
                    rng = np.random.default_rng([seed, len(rows)])
                    seq = detection_samples(bet, base, drop, alpha, ratio, loss, runs, rng)
                    cells.append(f"{seq / fixed:.2f}×" if math.isfinite(seq) else "> 40,000")
                rows.append(
                    f"| {base:.0%}, {100 * drop:g} pt, {100 * loss:g} pt, {alpha:.4g}, 1:{ratio} | "
                    + " | ".join(cells)
                    + " |"
                )
            sys.stderr.write(".")
            sys.stderr.flush()
    sys.stderr.write("\n")
    return "\n".join(rows)


def floor_table() -> str:
    """The Brownian floor for a continuously watched likelihood ratio."""
    rows = [
        "| alpha | true alternative known (SPRT) | + log 2 (two alternatives) "
        "| + log 4 (the operator's four) |",
        "|---|---|---|---|",
    ]
    for alpha in ALPHAS:
        cells = [sprt_ratio(alpha, c) for c in (0.0, math.log(2), math.log(4))]
        rows.append(f"| {alpha:.4g} | " + " | ".join(f"{x:.2f}×" for x in cells) + " |")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    print(floor_table())
    print()
    print(table(args.seed, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
