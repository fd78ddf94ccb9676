"""E-value kernels of the gate statistics (:mod:`tierguard.operator.statistics`).

Vectorised over leading axes so bench/detection can run thousands of gates at once
through the same code the operator runs for one.

The shifted-null construction (used for every margin ``m``): for a block with ``n_c``
control and ``n_t`` canary outcomes, an alternative ``(q_c, q_t)`` and the null line
``{(p, p + m)}``, pick the null point ``(r, r + m)`` that solves
``sum_a n_a (q_a - r_a) / (r_a (1 - r_a)) = 0``. The block e-value is the likelihood ratio
of the alternative against that point. Its expectation under ``(p, p + m)`` is
``prod_a (1 + (p - r)(q_a - r_a)/(r_a(1 - r_a)))^{n_a}``, whose log is concave in p with
zero slope and value 0 at ``p = r`` — so it is at most 1 on the whole null line, and
(because the canary's coefficient has the right sign) on the whole one-sided null too.
For ``m = 0`` the root is the pooled ``p0`` of gate-statistics.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tierguard.operator.gatecounters import GateInputError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike  # scalars or arrays; kernels broadcast their arguments
Grid = Sequence[float] | npt.NDArray[np.float64]  # a grid, or one grid per gate (last axis)

#: Margins (canary bad rate minus control bad rate) on which the pass-side confidence
#: sequence is evaluated. The reported bound is one of these values (or the allowed drop,
#: which is always added), so the grid is dense where SLOs usually sit.
DEFAULT_MARGINS: tuple[float, ...] = (
    -0.02,
    0.0,
    0.01,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.15,
    0.2,
    0.3,
)
#: Clip for the plug-in control rate. Keeps the alternatives inside (0, 1) and the
#: per-outcome log-likelihood ratios bounded (gate-statistics.md §4).
Q_MIN, Q_MAX = 0.01, 0.98
#: Prior weight (in samples) pulling the pass side's plug-in canary rate towards the
#: control rate: early, noisy blocks then bet on "no difference", which is what the pass
#: side hopes to show.
PLUGIN_SHRINK = 50.0
#: Bisection steps for the absolute bounds; 60 halvings reach float64 resolution.
#: Cap on safeguarded Newton steps for the shifted-null root. Typical blocks converge in
#: about five; bisection fallbacks near the domain edges make the cap a worst case.
_NEWTON_STEPS = 80

# --------------------------------------------------------------------------- kernels
# Vectorised over leading axes so bench/detection can run thousands of gates at once
# through the same code the operator runs for one.


def plugin_control_rate(past_bad_c: ArrayLike, past_n_c: ArrayLike) -> FloatArray:
    """Predictable estimate of the control bad rate from earlier blocks only."""
    q = (np.asarray(past_bad_c, dtype=float) + 0.5) / (np.asarray(past_n_c, dtype=float) + 1.0)
    return np.clip(q, Q_MIN, Q_MAX)


def _null_point(
    q_c: FloatArray, q_t: FloatArray, n_c: FloatArray, n_t: FloatArray, m: FloatArray
) -> FloatArray:
    """Control-arm coordinate r of the null point (r, r + m) for alternative (q_c, q_t).

    Solves ``n_c (q_c - r)/(r(1-r)) + n_t (q_t - r - m)/((r+m)(1-r-m)) = 0``; the left side
    strictly decreases in r, so a bracketed Newton iteration is exact and robust.
    For m == 0 the root is the pooled rate, returned in closed form.
    """
    total = n_c + n_t
    safe_total = np.where(total > 0, total, 1.0)
    pooled = (n_c * q_c + n_t * (q_t - m)) / safe_total
    if np.all(m == 0):
        return np.asarray(pooled, dtype=float)
    lo = np.broadcast_to(np.maximum(0.0, -m) + 1e-12, pooled.shape).copy()
    hi = np.broadcast_to(np.minimum(1.0, 1.0 - m) - 1e-12, pooled.shape).copy()
    r = np.clip(pooled, lo + 1e-9, hi - 1e-9)
    # Safeguarded Newton: g is strictly decreasing, so its sign at each iterate shrinks
    # the bracket; a Newton step leaving the bracket is replaced by bisection.
    for _ in range(_NEWTON_STEPS):
        rt = r + m
        vc, vt = r * (1 - r), rt * (1 - rt)
        g = n_c * (q_c - r) / vc + n_t * (q_t - rt) / vt
        scale = n_c / vc + n_t / vt
        done = (np.abs(g) <= 1e-12 * scale) | (hi - lo < 1e-13)
        if bool(np.all(done)):
            break
        dg = -(
            n_c * ((r - q_c) ** 2 + q_c * (1 - q_c)) / vc**2
            + n_t * ((rt - q_t) ** 2 + q_t * (1 - q_t)) / vt**2
        )
        lo = np.where(g > 0, r, lo)
        hi = np.where(g > 0, hi, r)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = r - g / dg
        r = np.where(done, r, np.where((step >= lo) & (step <= hi), step, 0.5 * (lo + hi)))
    return np.asarray(r, dtype=float)


def shifted_block_log_e(
    bad_c: ArrayLike,
    n_c: ArrayLike,
    bad_t: ArrayLike,
    n_t: ArrayLike,
    q_c: ArrayLike,
    q_t: ArrayLike,
    margin: ArrayLike,
) -> FloatArray:
    """Log e-value of one block for the null "canary - control = margin" (and its
    one-sided extension away from the alternative) against the alternative (q_c, q_t).

    Exact at every sample size; arrays broadcast. A block with no outcomes gives 0.
    """
    bc, nc, bt, nt = (np.asarray(x, dtype=float) for x in (bad_c, n_c, bad_t, n_t))
    qc, qt, m = (np.asarray(x, dtype=float) for x in (q_c, q_t, margin))
    shape = np.broadcast_shapes(bc.shape, nc.shape, bt.shape, nt.shape, qc.shape, qt.shape, m.shape)
    bc, nc, bt, nt, qc, qt, m = (np.broadcast_to(x, shape) for x in (bc, nc, bt, nt, qc, qt, m))
    r_c = _null_point(qc, qt, nc, nt, m)
    r_t = r_c + m
    # Guard the logs: r is strictly inside (0, 1) whenever both arms have outcomes; with
    # one arm empty its terms are multiplied by zero counts anyway.
    r_c = np.clip(r_c, 1e-12, 1 - 1e-12)
    r_t = np.clip(r_t, 1e-12, 1 - 1e-12)
    log_e = (
        bt * np.log(qt / r_t)
        + (nt - bt) * np.log((1 - qt) / (1 - r_t))
        + bc * np.log(qc / r_c)
        + (nc - bc) * np.log((1 - qc) / (1 - r_c))
    )
    return np.asarray(np.where(nc + nt > 0, log_e, 0.0), dtype=float)


def fail_grid(allowed_drop: float) -> tuple[float, ...]:
    """Alternatives (extra bad rate of the canary) mixed by the fail side.

    Centred on the SLO's allowed drop (half to four times it): the test has its power
    where the SLO says a loss starts to matter, and the mixture costs only log(4) in the
    threshold compared with knowing the true drop.
    """
    if not 0 < allowed_drop < 1:
        raise GateInputError(f"allowedDrop must be in (0, 1), got {allowed_drop}")
    return tuple(round(min(k * allowed_drop, 0.5), 6) for k in (0.5, 1.0, 2.0, 4.0))


def fail_block_log_e(
    bad_c: ArrayLike,
    n_c: ArrayLike,
    bad_t: ArrayLike,
    n_t: ArrayLike,
    past_bad_c: ArrayLike,
    past_n_c: ArrayLike,
    grid: Grid,
    fail_margin: ArrayLike = 0.0,
) -> FloatArray:
    """Per-alternative log e-values of one block for the fail side; last axis = grid.
    ``fail_margin`` is a scalar or one margin per gate (broadcast over leading axes).

    H0: "canary - control <= fail_margin". The alternative is ``q_t = q_c + fail_margin +
    d``, capped below 1. Where the cap pushes it onto or below the margin (a control rate
    near 1 with a non-zero margin) the bet would point the wrong way -- its canary factor
    would *grow* as the canary gets better -- so that alternative bets nothing (log e = 0)
    instead: a better canary can never be failed, however bad the control arm is.
    """
    fm = np.asarray(fail_margin, dtype=float)
    if not bool(np.all((fm >= 0) & (fm < 1))):
        raise GateInputError(f"failMargin must be in [0, 1), got {fm!r}")
    fm = fm[..., None]
    q_c = plugin_control_rate(past_bad_c, past_n_c)[..., None]
    d = np.asarray(grid, dtype=float)
    q_t = np.minimum(q_c + fm + d, 0.995)
    bc, nc, bt, nt = (np.asarray(x, dtype=float)[..., None] for x in (bad_c, n_c, bad_t, n_t))
    log_e = shifted_block_log_e(bc, nc, bt, nt, q_c, q_t, fm)
    # The same guard as the pass side's: only an alternative strictly beyond the null
    # line is a bet in the right direction (then q_t > r_t, see the module docstring).
    return np.asarray(np.where(q_t - q_c > fm + 1e-9, log_e, 0.0), dtype=float)


def default_fail_margin(allowed_drop: float) -> float:
    """The fail side's tolerated loss when an SLO sets none: half the allowed drop.

    FAIL then means "confident the canary is worse than control by more than half of what
    the SLO allows". A canary within half the allowed drop is rolled back with probability
    at most alpha; a canary at the allowed drop is caught with the power of a test against
    an effect of half the drop (docs/statistics.md, *Fail margin*, has the sample cost).
    """
    return round(allowed_drop / 2.0, 9)


def pass_block_log_e(
    bad_c: ArrayLike,
    n_c: ArrayLike,
    bad_t: ArrayLike,
    n_t: ArrayLike,
    past_bad_c: ArrayLike,
    past_n_c: ArrayLike,
    past_bad_t: ArrayLike,
    past_n_t: ArrayLike,
    margins: Grid,
) -> FloatArray:
    """Per-margin log e-values of one block for H0_m "canary - control >= m"; last axis
    = margins. The alternative is a plug-in from earlier blocks (predictable, hence
    valid), shrunk towards "no difference" and kept below each margin."""
    q_c = plugin_control_rate(past_bad_c, past_n_c)
    pbt, pnt = np.asarray(past_bad_t, dtype=float), np.asarray(past_n_t, dtype=float)
    q_t_hat = (pbt + PLUGIN_SHRINK * q_c) / (pnt + PLUGIN_SHRINK)
    m = np.asarray(margins, dtype=float)
    gap = np.maximum(0.005, 0.25 * np.abs(m))
    diff = np.minimum((q_t_hat - q_c)[..., None], m - gap)
    q_c_e = q_c[..., None]
    q_t = np.clip(q_c_e + diff, 0.005, 0.995)
    bc, nc, bt, nt = (np.asarray(x, dtype=float)[..., None] for x in (bad_c, n_c, bad_t, n_t))
    # Where clipping pushed the alternative onto or above the margin the e-value would
    # be meaningless; bet nothing (log e = 0) there.
    log_e = shifted_block_log_e(bc, nc, bt, nt, q_c_e, q_t, m)
    return np.asarray(np.where(q_t - q_c_e < m, log_e, 0.0), dtype=float)


def log_mean_exp(log_e: FloatArray, axis: int = -1) -> FloatArray:
    """log of the equal-weight mixture of e-processes (stable)."""
    top = np.max(log_e, axis=axis, keepdims=True)
    out = top + np.log(np.mean(np.exp(log_e - top), axis=axis, keepdims=True))
    return np.asarray(np.squeeze(out, axis=axis), dtype=float)


def upper_bound_from_rejections(
    rejected: npt.NDArray[np.bool_], margins: Sequence[float]
) -> FloatArray:
    """Anytime-valid upper confidence bound on canary - control from the pass side.

    ``rejected[..., i]`` says H0 "diff >= margins[i]" has been rejected at some look.
    The bound is the smallest margin from which all larger margins are rejected (1.0 when
    even the largest is not). Requiring the whole upper chain makes a miss need the
    rejection of one specific true null (the largest margin below the true difference),
    so coverage is at least 1 - alpha without any union bound over the grid.
    """
    order = np.argsort(np.asarray(margins, dtype=float))
    m_sorted = np.asarray(margins, dtype=float)[order]
    rej = np.asarray(rejected, dtype=bool)[..., order]
    # suffix_all[..., i] = all(rej[..., i:])
    suffix_all = np.flip(np.cumprod(np.flip(rej, axis=-1), axis=-1), axis=-1).astype(bool)
    big = np.where(suffix_all, m_sorted, np.inf)
    bound = np.min(big, axis=-1)
    return np.asarray(np.where(np.isfinite(bound), bound, 1.0), dtype=float)


# --------------------------------------------------------------------------- alpha


def alpha_per_test(family_alpha: float, n_gates: int) -> float:
    """Share a false-rollback budget over all (tier, signal) gates (Bonferroni).

    With e-values the union bound is the natural choice: each gate's e-process crosses
    ``n_gates / family_alpha`` with probability at most ``family_alpha / n_gates``, so the
    chance that any gate ever rolls back identical arms stays within ``family_alpha``,
    whatever the dependence between signals.
    """
    if not 0 < family_alpha < 1:
        raise GateInputError(f"alpha must be in (0, 1), got {family_alpha}")
    if n_gates < 1:
        raise GateInputError(f"need at least one gate to share alpha over, got {n_gates}")
    return family_alpha / n_gates
