"""Sticky users with correlated outcomes: the traffic model of the clustering study.

The router assigns whole users to an arm, and a user's answers are not independent:
each user ``u`` has their own bad rate ``p_u ~ Beta`` with mean ``p`` (the tier's rate)
and intra-user correlation ``icc`` (the correlation of two outcomes of the same user;
``Beta(p (1 - icc) / icc, (1 - p)(1 - icc) / icc)``), the same user keeps coming back
through the whole rollout, and the canary shifts every user's rate by the loss. Users
sit in hash buckets: a user's bucket decides the arm at every weight (the canary set is
a prefix of the bucket range) and the user cluster ``bucket mod K`` the router exports.

Exact and cheap: every user sends requests as a Poisson process of
``requests_per_user_day`` (thinned by the signal's observed fraction), so by Poisson
superposition and thinning, the bad and good outcomes of a (bucket slice, cluster) cell
in a minute are independent Poissons with rates ``r * sum(p_u)`` and
``r * sum(1 - p_u)`` over the cell's users -- fixed for the whole rollout. Per-user
correlation then shows up exactly as it does in production: the cells' rates differ by
more than binomial noise, more so the longer the same users keep coming.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
from sim import F64, Scenario, Traffic

Clusters = int


def slice_bounds(sc: Scenario) -> F64:
    """Bucket-range boundaries at which a user can change arm during the rollout."""
    shares = {0.0, 1.0, 1.0 - sc.holdback}
    shares |= {min(max(w, sc.min_share), 1.0) for w in sc.steps if w < 1.0}
    return np.array(sorted(shares))


def clustered_traffic(
    icc: float, requests_per_user_day: float, clusters: Clusters = 16
) -> Callable[[Scenario, np.random.Generator, int], Traffic]:
    """A traffic factory for :func:`sim.simulate` with sticky, correlated users."""
    if not 0 <= icc < 1:
        raise ValueError(f"icc must be in [0, 1), got {icc}")

    def factory(sc: Scenario, rng: np.random.Generator, runs: int) -> Traffic:
        k, s = len(sc.tier_shares), len(sc.signals)
        bounds = slice_bounds(sc)
        width = np.diff(bounds)  # J slices
        j = len(width)
        p_control, p_canary = sc.bad_rates()
        frac = np.array([sig.observed_fraction for sig in sc.signals])
        rate = requests_per_user_day / 1440.0  # requests per user per minute
        lam_total = np.zeros((runs, k, s, j, clusters))
        lam_bad_c = np.zeros_like(lam_total)
        lam_bad_t = np.zeros_like(lam_total)
        for i, share in enumerate(sc.tier_shares):
            users = sc.requests_per_minute * share * 1440.0 / requests_per_user_day
            n = rng.poisson(users * width[None, :, None] / clusters, (runs, j, clusters))
            cell = np.repeat(np.arange(n.size), n.ravel())
            for sig in range(s):
                p, q = p_control[i, sig], p_canary[i, sig]
                if icc > 0 and 0 < p < 1:
                    a, b = p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc
                    pu = rng.beta(a, b, cell.size)
                else:
                    pu = np.full(cell.size, p)
                sum_c = np.bincount(cell, pu, minlength=n.size).reshape(n.shape)
                sum_t = np.bincount(cell, np.clip(pu + (q - p), 0.0, 1.0), minlength=n.size)
                scale = rate * frac[sig]
                lam_total[:, i, sig] = scale * n
                lam_bad_c[:, i, sig] = scale * sum_c
                lam_bad_t[:, i, sig] = scale * sum_t.reshape(n.shape)
        upper = bounds[1:]
        # Arm rates per canary share (the share only takes a few values): precomputed.
        per_share: dict[float, tuple[F64, F64, F64, F64]] = {}

        def arm_rates(share: float) -> tuple[F64, F64, F64, F64]:
            key = round(float(share), 9)
            if key not in per_share:
                on = (upper <= key + 1e-9).astype(float)[None, None, None, :, None]
                per_share[key] = (
                    (lam_bad_c * (1 - on)).sum(axis=3),
                    (lam_total * (1 - on)).sum(axis=3),
                    (lam_bad_t * on).sum(axis=3),
                    (lam_total * on).sum(axis=3),
                )
            return per_share[key]

        def draw(ids: npt.NDArray[np.int64], canary_share: F64) -> F64:
            out = np.empty((4, len(ids), k, s, clusters))
            for share in np.unique(canary_share):
                rows = np.flatnonzero(canary_share == share)
                c_bad, c_total, t_bad, t_total = (a[ids[rows]] for a in arm_rates(share))
                bad_c = rng.poisson(c_bad)
                bad_t = rng.poisson(t_bad)
                out[0, rows] = bad_c
                out[1, rows] = bad_c + rng.poisson(np.maximum(c_total - c_bad, 0.0))
                out[2, rows] = bad_t
                out[3, rows] = bad_t + rng.poisson(np.maximum(t_total - t_bad, 0.0))
            return out

        return draw

    return factory
