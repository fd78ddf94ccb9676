"""The stage loop the detection studies share (:mod:`sim`, :mod:`slices`): minute by
minute, draw outcomes for the rollouts in flight, judge them, and advance, roll back,
pause or promote each one. The stage policy is the one in :mod:`sim`'s docstring; what
is judged and what a study records of a finished run are the caller's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from sim import Scenario

ROLLED_BACK, PROMOTED, PAUSED = 0, 1, 2
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]
Ints = npt.NDArray[np.int64]

Traffic = Callable[[npt.NDArray[np.int64], F64], F64]
"""(active run ids, canary share per active run) -> one minute's outcomes,
(4, runs, tiers, signals, clusters): bad_c, n_c, bad_t, n_t."""


def independent_traffic(
    sc: Scenario, rng: np.random.Generator, rates: tuple[F64, F64] | None = None
) -> Traffic:
    """Every request an independent draw (no per-user correlation); one cluster.
    ``rates``: (control, canary) bad rates per tier and signal (default: the scenario's)."""
    k, s = len(sc.tier_shares), len(sc.signals)
    p_control, p_canary = rates if rates is not None else sc.bad_rates()
    lam = sc.requests_per_minute * np.asarray(sc.tier_shares)
    frac = np.array([sig.observed_fraction for sig in sc.signals])

    def draw(ids: npt.NDArray[np.int64], canary_share: F64) -> F64:
        n_act = len(ids)
        req = rng.poisson(np.broadcast_to(lam, (n_act, k)))
        req_t = rng.binomial(req, canary_share[:, None])
        req_c = req - req_t
        obs_c = rng.binomial(req_c[..., None], np.broadcast_to(frac, (n_act, k, s)))
        obs_t = rng.binomial(req_t[..., None], np.broadcast_to(frac, (n_act, k, s)))
        bad_c = rng.binomial(obs_c, np.broadcast_to(p_control, (n_act, k, s)))
        bad_t = rng.binomial(obs_t, np.broadcast_to(p_canary, (n_act, k, s)))
        return np.stack([bad_c, obs_c, bad_t, obs_t]).astype(float)[..., None]

    return draw


Judge = Callable[[F64], tuple[Bools, Bools]]
"""One minute's outcomes (4, active runs, tiers, signals, clusters) -> (any gate failed,
every gate passes) per active run."""
Ended = Callable[[Ints, Bools, Bools], None]
"""(ids of the runs that ended, which active runs ended, which active runs failed):
record what a study keeps of them, before their gate state is dropped."""


def run_stages(
    sc: Scenario,
    runs: int,
    draw: Traffic,
    judge: Judge,
    keep: Callable[[Ints], None],
    ended: Ended | None = None,
    stage_counts: Callable[[F64], F64] | None = None,
) -> tuple[Ints, Ints, Ints]:
    """The stage loop (the module docstring's stage policy), shared by the studies:
    ``draw`` a minute of outcomes for the runs in flight, ``judge`` them, advance, roll
    back, pause or promote each run. ``keep(idx)`` drops the runs that ended from the
    gate state (indexes into the runs still in flight); ``stage_counts`` maps a minute's
    outcomes summed over clusters (4, runs, tiers, signals) to the counts ``min_samples``
    applies to per tier and signal (default: the tiers as drawn).
    Returns (result, stage index, minutes) per run."""
    result = np.full(runs, -1, dtype=np.int64)
    end_stage = np.zeros(runs, dtype=np.int64)
    end_minute = np.zeros(runs, dtype=np.int64)
    ids = np.arange(runs)
    stage = np.zeros(runs, dtype=np.int64)
    stage_start = np.zeros(runs, dtype=np.int64)
    stage_n: F64 | None = None  # per-stage observed outcomes: control, canary
    minute = 0
    while len(ids):
        minute += 1
        weight = np.asarray(sc.steps)[stage]
        canary_share = np.where(weight >= 1.0, 1.0 - sc.holdback, np.maximum(weight, sc.min_share))
        blk_clusters = draw(ids, canary_share)
        failed, passed = judge(blk_clusters)
        blk = blk_clusters.sum(axis=-1)
        counts = stage_counts(blk) if stage_counts is not None else blk
        if stage_n is None:
            stage_n = np.zeros((2, *counts.shape[1:]))
        stage_n[0] += counts[1]
        stage_n[1] += counts[3]
        elapsed = minute - stage_start
        enough = (stage_n >= sc.min_samples).all(axis=(0, 2, 3))
        advance = ~failed & passed & enough & (elapsed >= sc.bake_minutes)
        paused = (
            ~failed & ~advance & ((elapsed >= sc.max_step_minutes) | (minute >= sc.horizon_minutes))
        )
        promoted = advance & (stage == len(sc.steps) - 1)
        done = failed | paused | promoted
        if done.any():
            d = ids[done]
            result[d] = np.where(
                failed[done], ROLLED_BACK, np.where(promoted[done], PROMOTED, PAUSED)
            )
            end_stage[d] = stage[done]
            end_minute[d] = minute
            if ended is not None:
                ended(d, done, failed)
        step_up = advance & ~promoted
        stage = np.where(step_up, stage + 1, stage)
        stage_start = np.where(step_up, minute, stage_start)
        stage_n[:, step_up] = 0.0
        if done.any():
            kept = np.flatnonzero(~done)
            ids, stage, stage_start = ids[kept], stage[kept], stage_start[kept]
            stage_n = stage_n[:, kept]
            keep(kept)
    return result, end_stage, end_minute
