"""Gate statistics: peeking-safe tests of a canary arm against a control arm.

Pure functions (numpy and math only) so that every decision the operator takes can be
replayed in a unit test or a benchmark (``bench/detection`` drives exactly these
functions). No Kubernetes, kopf or Prometheus import may appear here.

What a gate judges
------------------
Every signal is a rate of *bad* outcomes per arm (thumbs-down among rated responses,
judge disagreements among shadow-judged requests, errors or escalations among requests,
requests slower than the latency objective). The operator feeds cumulative counter
readings per arm each interval; :func:`update` turns successive readings into block
deltas (:func:`counter_delta` handles counter resets) and adds each block to two kinds of
e-process:

* **Fail side** (roll back): H0 "the canary is no worse than control + ``fail_margin``"
  (default :func:`default_fail_margin`, half the SLO's allowed drop: a canary within
  that tolerated loss is rolled back with probability at most alpha) against a
  *mixture* of alternatives ``q_t = q_c + fail_margin + d`` for ``d`` on a grid around
  the SLO's allowed drop. The per-block e-value is the exact k-sample Bernoulli
  e-variable (see docs/statistics.md): it needs no normal approximation and no minimum
  sample size, and it stays valid when the base rate drifts from minute to minute and
  when the canary share changes between stages, so **one e-process runs across all
  stages on one alpha budget**. FAIL when the e-value reaches ``1/alpha_per_test``
  (Ville's inequality bounds the chance of that ever happening under H0 by alpha,
  however often it is looked at).
* **Pass side** (promote): for each margin ``m`` on a grid, an e-process for H0_m
  "canary - control >= m" with a predictable plug-in alternative. The upper confidence
  bound is the smallest grid margin from which every larger margin has been rejected;
  it is an anytime-valid confidence sequence (valid at every n, no asymptotics). PASS
  needs that bound within the allowed drop *and* a minimum number of samples per arm:
  silence is not evidence.

Why exact e-values instead of the Gaussian mixture SPRT: both keep false rollbacks near
alpha under per-minute looks, but the Gaussian versions are asymptotic (they need a
minimum n, and the normal approximation is unreliable for rare events such as a 1 %
error rate at a few hundred samples); the exact Bernoulli construction has no such
caveat, and comparable power (gate-statistics.md §4: median 576 vs 651 canary samples
to detect 10 % -> 15 % at 1:1, both with power 0.98).

The plug-in control rate uses the *control* arm's earlier blocks only (the note in
gate-statistics.md pools both arms): under a real loss pooling drags the estimate towards
the canary, which shrinks the bet; under the null both are valid because the estimate is
fixed before the block is seen.

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

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from tierguard.api.enums import Verdict
from tierguard.operator import design_effect as de

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
_BISECT_STEPS = 60
#: Cap on safeguarded Newton steps for the shifted-null root. Typical blocks converge in
#: about five; bisection fallbacks near the domain edges make the cap a worst case.
_NEWTON_STEPS = 80

Kind = Literal["relative", "absolute"]


class GateInputError(ValueError):
    """A reading or parameter a gate cannot use (negative count, alpha outside (0, 1))."""


# --------------------------------------------------------------------------- counters


def counter_delta(prev: float | None, cur: float) -> float:
    """Increase of a Prometheus counter between two raw readings.

    A counter that went down was restarted (the process restarted and counts from 0
    again), so everything it shows now was counted since the previous look: the delta is
    the new value. Raw differences are used instead of PromQL ``increase()``, which
    extrapolates to the window edges and returns fractional counts.
    """
    if cur < 0 or (prev is not None and prev < 0):
        raise GateInputError(f"a counter cannot be negative (previous {prev}, current {cur})")
    if prev is None:
        return cur
    return cur - prev if cur >= prev else cur


def series_delta(prev: Mapping[str, float] | None, cur: Mapping[str, float]) -> float:
    """Summed increase over several series (one per router replica) of one counter.

    Resets are detected per series: summing first would hide one replica's restart
    behind the others' growth. A series seen for the first time started from zero since
    the previous look; a series that vanished (pod gone) contributes nothing.
    """
    prev = prev or {}
    return float(sum(counter_delta(prev.get(key), value) for key, value in cur.items()))


@dataclass(frozen=True)
class ArmReading:
    """Raw cumulative counter readings of one arm: bad outcomes and all outcomes, each
    as ``{series key: value}`` (the key is usually the pod; a single series may use "").
    """

    bad: Mapping[str, float]
    total: Mapping[str, float]

    @classmethod
    def of(cls, bad: float, total: float) -> ArmReading:
        """A reading with one series per counter (already summed by the caller)."""
        return cls(bad={"": float(bad)}, total={"": float(total)})


@dataclass(frozen=True)
class Block:
    """Outcomes counted in one interval (deltas), per arm."""

    control_bad: float
    control_total: float
    canary_bad: float = 0.0
    canary_total: float = 0.0

    @property
    def empty(self) -> bool:
        return self.control_total + self.canary_total <= 0


def block_from_readings(
    prev: Mapping[str, ArmReading] | None, cur: Mapping[str, ArmReading]
) -> Block:
    """Block deltas from two successive readings keyed by arm ("control", "canary").

    ``bad`` is clipped into ``[0, total]``: the two counters are separate series scraped
    at slightly different instants, so a block can momentarily show more bad outcomes
    than outcomes.
    """
    out: dict[str, tuple[float, float]] = {}
    for arm in ("control", "canary"):
        reading = cur.get(arm)
        if reading is None:
            out[arm] = (0.0, 0.0)
            continue
        before = prev.get(arm) if prev else None
        total = series_delta(before.total if before else None, reading.total)
        bad = series_delta(before.bad if before else None, reading.bad)
        out[arm] = (min(max(bad, 0.0), total), total)
    return Block(out["control"][0], out["control"][1], out["canary"][0], out["canary"][1])


def cluster_block_from_readings(
    prev: Mapping[str, ArmReading] | None, cur: Mapping[str, ArmReading]
) -> dict[str, dict[str, tuple[float, float]]]:
    """Per side and user cluster, the block's (bad, total): series keys of clustered
    readings are ``instance#cluster`` (:mod:`tierguard.operator.design_effect`)."""
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for arm in ("control", "canary"):
        reading = cur.get(arm)
        if reading is None:
            continue
        before = prev.get(arm) if prev else None
        bad_by = de.split_by_cluster(reading.bad)
        per: dict[str, tuple[float, float]] = {}
        for cluster, totals in de.split_by_cluster(reading.total).items():
            total = series_delta(before.total if before else None, totals)
            bad = series_delta(before.bad if before else None, bad_by.get(cluster, {}))
            per[cluster] = (min(max(bad, 0.0), total), total)
        out[arm] = per
    return out


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


# --------------------------------------------------------------------------- state


@dataclass
class GateState:
    """Everything one (tier, signal) gate needs to resume exactly after a restart.

    Stored by the operator in the RoutingPolicy status as :meth:`to_json` output (plain
    lists and floats; Python's JSON round-trips float64 exactly, so a resumed gate takes
    bit-for-bit the same decisions as one that never stopped).
    """

    kind: Kind
    allowed_drop: float
    fail_margin: float = 0.0
    grid: tuple[float, ...] = ()
    margins: tuple[float, ...] = ()
    log_e_fail: list[float] = field(default_factory=list)  # per grid point, running sum
    max_log_e_fail: float = 0.0  # running max of the mixture: a crossing is final
    log_e_pass: list[float] = field(default_factory=list)  # per margin, running sum
    max_log_e_pass: list[float] = field(default_factory=list)  # per margin, running max
    control_bad: float = 0.0  # cumulative since the gate started (all stages)
    control_total: float = 0.0
    canary_bad: float = 0.0
    canary_total: float = 0.0
    blocks: int = 0  # non-empty blocks added
    last: dict[str, dict[str, dict[str, float]]] | None = None  # raw readings per arm
    #: cumulative (bad, total) per side ("control"/"canary") and user cluster
    clusters: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    design_effect: float = 1.0  # variance inflation from per-user clustering (>= 1)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "allowedDrop": self.allowed_drop,
            "failMargin": self.fail_margin,
            "grid": list(self.grid),
            "margins": list(self.margins),
            "logEFail": list(self.log_e_fail),
            "maxLogEFail": self.max_log_e_fail,
            "logEPass": list(self.log_e_pass),
            "maxLogEPass": list(self.max_log_e_pass),
            "counts": [self.control_bad, self.control_total, self.canary_bad, self.canary_total],
            "blocks": self.blocks,
            "last": self.last,
            "clusters": {side: dict(v) for side, v in self.clusters.items()},
            "designEffect": self.design_effect,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> GateState:
        cb, ct, tb, tt = (float(x) for x in data["counts"])
        return cls(
            kind=data["kind"],
            allowed_drop=float(data["allowedDrop"]),
            fail_margin=float(data["failMargin"]),
            grid=tuple(float(x) for x in data["grid"]),
            margins=tuple(float(x) for x in data["margins"]),
            log_e_fail=[float(x) for x in data["logEFail"]],
            max_log_e_fail=float(data["maxLogEFail"]),
            log_e_pass=[float(x) for x in data["logEPass"]],
            max_log_e_pass=[float(x) for x in data["maxLogEPass"]],
            control_bad=cb,
            control_total=ct,
            canary_bad=tb,
            canary_total=tt,
            blocks=int(data["blocks"]),
            last=data.get("last"),
            clusters={
                str(side): {str(c): [float(x) for x in v] for c, v in per.items()}
                for side, per in (data.get("clusters") or {}).items()
            },
            design_effect=float(data.get("designEffect", 1.0)),
        )


def new_gate_state(
    allowed_drop: float,
    kind: Kind = "relative",
    fail_margin: float | None = None,
    margins: Iterable[float] = DEFAULT_MARGINS,
) -> GateState:
    """A fresh gate. For ``kind="absolute"`` ``allowed_drop`` is the threshold on the
    canary's bad rate and only the canary arm is used.

    ``fail_margin`` (relative gates): the loss the fail side tolerates before it may roll
    back; None takes :func:`default_fail_margin` (half the allowed drop). It must stay
    within the allowed drop, so that FAIL never fires for a canary the pass side could
    promote.
    """
    if kind == "absolute":
        if not 0 < allowed_drop < 1:
            raise GateInputError(f"an absolute threshold must be in (0, 1), got {allowed_drop}")
        return GateState(kind=kind, allowed_drop=allowed_drop)
    grid = fail_grid(allowed_drop)
    margin = default_fail_margin(allowed_drop) if fail_margin is None else float(fail_margin)
    if not 0 <= margin <= allowed_drop:
        raise GateInputError(
            f"failMargin must be in [0, allowedDrop={allowed_drop}], got {fail_margin}"
        )
    fail_margin = margin
    ms = tuple(sorted(set(margins) | {allowed_drop}))
    return GateState(
        kind=kind,
        allowed_drop=allowed_drop,
        fail_margin=fail_margin,
        grid=grid,
        margins=ms,
        log_e_fail=[0.0] * len(grid),
        log_e_pass=[0.0] * len(ms),
        max_log_e_pass=[0.0] * len(ms),
    )


ClusterBlock = Mapping[str, Mapping[str, tuple[float, float]]]  # side -> cluster -> counts


def add_clusters(
    state: GateState, clusters: ClusterBlock
) -> tuple[dict[str, dict[str, list[float]]], float]:
    """Cumulative per-cluster counts with ``clusters`` added, and their design effect."""
    out: dict[str, dict[str, list[float]]] = {
        side: {c: list(v) for c, v in per.items()} for side, per in state.clusters.items()
    }
    for side, per in clusters.items():
        mine = out.setdefault(side, {})
        for cluster, (bad, total) in per.items():
            if cluster in ("", "none") or total <= 0:
                continue  # unclustered series mix users of every cluster: not independent
            prev = mine.get(cluster, [0.0, 0.0])
            mine[cluster] = [prev[0] + float(bad), prev[1] + float(total)]
    keys = sorted({c for per in out.values() for c in per})
    if not keys:
        return out, 1.0
    sides = sorted(out)
    bad_ = np.array([[out[s].get(c, [0.0, 0.0])[0] for c in keys] for s in sides])
    total_ = np.array([[out[s].get(c, [0.0, 0.0])[1] for c in keys] for s in sides])
    return out, float(de.design_effect(bad_, total_))


def add_block(state: GateState, block: Block, clusters: ClusterBlock | None = None) -> GateState:
    """A new state with one block of outcomes added (pure; ``state`` is not changed).

    Running maxima of the e-processes are kept as well: a crossing of ``1/alpha`` is
    final (Ville's inequality covers the supremum over time), so a fail stays a fail and
    the confidence bound never widens again. Empty blocks are skipped.

    ``clusters`` (optional): the same block per side and user cluster. The maxima are
    then taken over the log e-values divided by the running design effect
    (:mod:`tierguard.operator.design_effect`), so per-user correlation does not pass
    for evidence.
    """
    if min(block.control_bad, block.control_total, block.canary_bad, block.canary_total) < 0:
        raise GateInputError(f"block counts cannot be negative: {block}")
    if block.empty:
        return state
    new = GateState.from_json(state.to_json())
    new.last = state.last
    if clusters:
        new.clusters, new.design_effect = add_clusters(state, clusters)
    deff = max(1.0, new.design_effect)
    if state.kind == "relative":
        args = (block.control_bad, block.control_total, block.canary_bad, block.canary_total)
        lf = fail_block_log_e(
            *args, state.control_bad, state.control_total, state.grid, state.fail_margin
        )
        lp = pass_block_log_e(
            *args,
            state.control_bad,
            state.control_total,
            state.canary_bad,
            state.canary_total,
            state.margins,
        )
        new.log_e_fail = [a + float(b) for a, b in zip(state.log_e_fail, lf, strict=True)]
        mix = float(log_mean_exp(np.asarray(new.log_e_fail) / deff))
        new.max_log_e_fail = max(state.max_log_e_fail, mix)
        new.log_e_pass = [a + float(b) for a, b in zip(state.log_e_pass, lp, strict=True)]
        new.max_log_e_pass = [
            max(a, b / deff) for a, b in zip(state.max_log_e_pass, new.log_e_pass, strict=True)
        ]
    new.control_bad += block.control_bad
    new.control_total += block.control_total
    new.canary_bad += block.canary_bad
    new.canary_total += block.canary_total
    new.blocks += 1
    return new


def rebase(state: GateState, readings: Mapping[str, ArmReading]) -> GateState:
    """Take ``readings`` as the new baseline without adding a block.

    Use it when the series behind an arm change identity, e.g. after promotion, when the
    ``holdback`` arm's counters start being passed as "control": otherwise their whole
    history would be counted as one interval.
    """
    new = GateState.from_json(state.to_json())
    new.last = {arm: {"bad": dict(r.bad), "total": dict(r.total)} for arm, r in readings.items()}
    return new


def update(state: GateState, readings: Mapping[str, ArmReading]) -> GateState:
    """Add the interval since the previous readings (raw cumulative counters per arm,
    keyed "control" and "canary"; after promotion pass the holdback arm as "control").

    The very first readings only set the baseline: what happened before the gate started
    is not attributable to this rollout. A long gap between readings (operator restart)
    is simply one larger block, which is as valid as many small ones.
    """
    cur = {arm: {"bad": dict(r.bad), "total": dict(r.total)} for arm, r in readings.items()}
    if state.last is None:
        new = GateState.from_json(state.to_json())
        new.last = cur
        return new
    prev = {arm: ArmReading(bad=v["bad"], total=v["total"]) for arm, v in state.last.items()}
    new = add_block(
        state, block_from_readings(prev, readings), cluster_block_from_readings(prev, readings)
    )
    if new is state:
        new = GateState.from_json(state.to_json())
    new.last = cur
    return new


# --------------------------------------------------------------------------- verdicts


@dataclass(frozen=True)
class GateResult:
    """A gate's verdict and the figures an SRE reads in status."""

    verdict: Verdict
    reason: str
    control_samples: float
    canary_samples: float
    control_rate: float | None
    canary_rate: float | None
    upper_bound: float  # anytime-valid upper bound on canary - control (or canary rate)
    e_value: float  # fail-side evidence against "canary no worse"
    threshold: float  # the e-value at which the gate fails (1 / alpha_per_test)


def combine_verdicts(verdicts: Iterable[Verdict]) -> Verdict:
    """One verdict for a stage from its gates' verdicts.

    Any FAIL fails the stage (that tier is confidently worse); otherwise any NO_DATA
    makes the stage NO_DATA (never promote on missing data); PASS needs every gate to
    pass; everything else is INCONCLUSIVE. No gates at all is NO_DATA, not a pass.
    """
    seen = set(verdicts)
    if Verdict.FAIL in seen:
        return Verdict.FAIL
    if not seen or Verdict.NO_DATA in seen:
        return Verdict.NO_DATA
    if seen == {Verdict.PASS}:
        return Verdict.PASS
    return Verdict.INCONCLUSIVE


def _rate(bad: float, total: float) -> float | None:
    return bad / total if total > 0 else None


def relative_upper_bound(state: GateState, alpha_per_test: float) -> float:
    """The pass side's anytime-valid upper bound on canary - control at this alpha."""
    level = math.log(1.0 / alpha_per_test)
    rejected = np.asarray(state.max_log_e_pass, dtype=float) >= level
    return float(upper_bound_from_rejections(rejected, state.margins))


def evaluate(
    state: GateState,
    allowed_drop: float,
    alpha_per_test: float,
    min_samples_per_arm: float,
    provider_error: str | None = None,
) -> GateResult:
    """The verdict of one gate now.

    FAIL as soon as the fail-side e-value has ever reached ``1/alpha_per_test`` (a crossing
    is final, even if the data source fails afterwards); NO_DATA when the caller reports
    that the query failed (``provider_error``) or nothing was counted yet; PASS only with
    ``min_samples_per_arm`` in both arms *and* the upper confidence bound within
    ``allowed_drop``; INCONCLUSIVE otherwise. Absolute gates are delegated to
    :func:`evaluate_absolute` (``allowed_drop`` is then the threshold rate).

    ``allowed_drop`` should be the one the state was created with (it is on the margin
    grid); any other value is judged against the bound on the grid, which is valid but
    coarser.
    """
    if not 0 < alpha_per_test < 1:
        raise GateInputError(f"alpha must be in (0, 1), got {alpha_per_test}")
    if state.kind == "absolute":
        return evaluate_absolute(
            state, allowed_drop, alpha_per_test, min_samples_per_arm, provider_error
        )
    threshold = 1.0 / alpha_per_test
    bound = relative_upper_bound(state, alpha_per_test)
    e_value = math.exp(min(state.max_log_e_fail, 700.0))

    def result(verdict: Verdict, reason: str) -> GateResult:
        return GateResult(
            verdict,
            reason,
            state.control_total,
            state.canary_total,
            _rate(state.control_bad, state.control_total),
            _rate(state.canary_bad, state.canary_total),
            bound,
            e_value,
            threshold,
        )

    if state.max_log_e_fail >= math.log(threshold):
        return result(
            Verdict.FAIL,
            f"canary worse than control by more than {state.fail_margin:.3f}: "
            f"e-value {e_value:.3g} >= {threshold:.3g}",
        )
    if provider_error is not None:
        return result(Verdict.NO_DATA, f"query failed: {provider_error}")
    if state.control_total + state.canary_total <= 0:
        return result(Verdict.NO_DATA, "no samples counted yet")
    low = min(state.control_total, state.canary_total)
    if low < min_samples_per_arm:
        return result(
            Verdict.INCONCLUSIVE,
            f"{low:.0f} of {min_samples_per_arm:.0f} samples in the smaller arm",
        )
    if bound <= allowed_drop:
        return result(
            Verdict.PASS, f"upper bound {bound:+.3f} within allowed drop {allowed_drop:.3f}"
        )
    return result(
        Verdict.INCONCLUSIVE,
        f"upper bound {bound:+.3f} not yet within allowed drop {allowed_drop:.3f}",
    )


# ----------------------------------------------------------------- absolute objective
# One arm, no nuisance parameter: Robbins' beta-binomial mixture martingale gives an
# exact confidence sequence for the canary's bad rate from the cumulative counts alone.

_PRIOR_A = _PRIOR_B = 0.5  # Jeffreys prior for the mixture


def _log_mixture(bad: float, n: float, p: float) -> float:
    """log of the Beta(1/2, 1/2)-mixture likelihood ratio against rate p (a martingale
    with mean 1 under p, for every n)."""
    a, b = _PRIOR_A, _PRIOR_B
    log_beta_post = math.lgamma(a + bad) + math.lgamma(b + n - bad) - math.lgamma(a + b + n)
    log_beta_prior = math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)
    return log_beta_post - log_beta_prior - bad * math.log(p) - (n - bad) * math.log1p(-p)


def absolute_bounds(bad: float, n: float, alpha: float) -> tuple[float, float]:
    """Anytime-valid (lower, upper) bounds on a bad rate: all p with mixture < 1/alpha."""
    if n <= 0:
        return 0.0, 1.0
    level = math.log(1.0 / alpha)
    phat = bad / n

    def boundary(inside: float, outside: float) -> float:
        # log mixture is convex in p with its minimum at phat: one crossing in between.
        for _ in range(_BISECT_STEPS):
            mid = 0.5 * (inside + outside)
            if _log_mixture(bad, n, mid) < level:
                inside = mid
            else:
                outside = mid
        return inside

    eps = 1e-12
    center = min(max(phat, eps), 1 - eps)
    lower = 0.0 if _log_mixture(bad, n, eps) < level else boundary(center, eps)
    upper = 1.0 if _log_mixture(bad, n, 1 - eps) < level else boundary(center, 1 - eps)
    return lower, upper


def evaluate_absolute(
    state: GateState,
    threshold_rate: float,
    alpha_per_test: float,
    min_samples: float,
    provider_error: str | None = None,
) -> GateResult:
    """Verdict for "the canary's bad rate must stay <= threshold_rate".

    FAIL when the lower bound exceeds the threshold (equivalently the e-value against
    every rate at or below it, ``mixture(threshold)``, reached ``1/alpha``); PASS when the
    upper bound is within it and ``min_samples`` canary outcomes were counted.
    """
    bad, n = state.canary_bad, state.canary_total
    # Per-user correlation: the bounds use the effective counts (Rao & Scott: counts
    # divided by the design effect), which keeps the rate and shrinks the evidence.
    deff = max(1.0, state.design_effect)
    lower, upper = absolute_bounds(bad / deff, n / deff, alpha_per_test)
    threshold = 1.0 / alpha_per_test
    e_value = (
        math.exp(min(_log_mixture(bad / deff, n / deff, threshold_rate), 700.0))
        if n > 0 and bad / n > threshold_rate
        else 1.0
    )

    def result(verdict: Verdict, reason: str) -> GateResult:
        return GateResult(
            verdict,
            reason,
            state.control_total,
            n,
            _rate(state.control_bad, state.control_total),
            _rate(bad, n),
            upper,
            e_value,
            threshold,
        )

    if n > 0 and lower > threshold_rate:
        return result(
            Verdict.FAIL, f"canary bad rate above {threshold_rate:.3f} (lower bound {lower:.3f})"
        )
    if provider_error is not None:
        return result(Verdict.NO_DATA, f"query failed: {provider_error}")
    if n <= 0:
        return result(Verdict.NO_DATA, "no samples counted yet")
    if n < min_samples:
        return result(Verdict.INCONCLUSIVE, f"{n:.0f} of {min_samples:.0f} samples")
    if upper <= threshold_rate:
        return result(Verdict.PASS, f"upper bound {upper:.3f} within {threshold_rate:.3f}")
    return result(
        Verdict.INCONCLUSIVE, f"upper bound {upper:.3f} not yet within {threshold_rate:.3f}"
    )


# ----------------------------------------------------------------- paired judge
# The paired sequential test (pairwise judge: canary worse / better / tie on the same
# request) lives in tierguard.operator.paired; re-exported here as part of the public
# statistics API.
from tierguard.operator.paired import PairedResult as PairedResult  # noqa: E402
from tierguard.operator.paired import PairedState as PairedState  # noqa: E402
from tierguard.operator.paired import evaluate_paired as evaluate_paired  # noqa: E402
from tierguard.operator.paired import new_paired_state as new_paired_state  # noqa: E402
from tierguard.operator.paired import paired_update as paired_update  # noqa: E402
