"""Simulated rollouts through tierguard's stages, judged by the operator's own gate code.

Reusable by ``bench/detection/run.py`` (the full study) and by the test that recomputes
the published figures with fewer runs. The gate statistics are *imported* from
``tierguard.operator.statistics`` (the same vectorised kernels the operator's
``GateState`` path calls); only the stage-advance loop (in :mod:`stages`, shared with the
slice study) is simplified, because the operator's real state machine lives in
``tierguard.operator.rollout``.

Model, per simulated minute, for every run still in flight (all arrays are
runs x tiers x signals, so thousands of rollouts advance together):

* requests per tier ~ Poisson(traffic x tier share); each request lands in the canary
  arm with the stage's weight (after 100 %: the holdback share stays on control);
* per signal, a fraction of requests yields an observed outcome (thumbs given, shadow
  judged; errors are observed on every request);
* bad outcomes ~ Binomial(observed, bad rate of tier, signal, arm).

Stage policy (the simplified loop): a stage lasts at least ``bake_minutes``; it advances
when every gate passes and every (tier, signal) has ``min_samples`` per arm in this
stage; any gate failing rolls the whole rollout back; a stage longer than
``max_step_minutes`` pauses it (a person must look). After the 100 % stage passes, the
rollout is promoted. A rollout still in flight after ``horizon_minutes`` (a week) is
counted as paused too: for the study, "not decided within a week" is a failure to decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from stages import F64 as F64
from stages import PAUSED as PAUSED
from stages import PROMOTED as PROMOTED
from stages import ROLLED_BACK as ROLLED_BACK
from stages import Bools as Bools
from stages import Ints, run_stages
from stages import Traffic as Traffic
from stages import independent_traffic as independent_traffic

from tierguard.operator import design_effect as de
from tierguard.operator import statistics as st

Method = Literal[
    "tierguard", "naive", "threshold", "threshold_loose", "aggregate", "tierguard_unadjusted"
]
METHODS: tuple[Method, ...] = ("tierguard", "naive", "threshold", "threshold_loose", "aggregate")
METHOD_LABELS: dict[str, str] = {
    "tierguard": "tierguard (per-tier e-process + CS)",
    "tierguard_unadjusted": "tierguard without the design effect",
    "naive": "naive z-test every minute",
    "threshold": "fixed threshold + failure limit",
    "threshold_loose": "same, loosened (2x drop, limit 10)",
    "aggregate": "aggregate-only e-process",
}
#: Minutes of canary data each fixed-threshold check looks at (a PromQL ``[10m]`` range).
THRESHOLD_WINDOW = 10


@dataclass(frozen=True)
class Signal:
    name: str
    observed_fraction: float  # share of requests that yield an outcome for this signal
    allowed_drop: float  # SLO: allowed increase of the bad rate
    quality_signal: bool  # carries the model's answer quality (drops with it)
    base_bad: float | None = None  # fixed base bad rate (errors); None = 1 - quality


@dataclass(frozen=True)
class Scenario:
    """Traffic, quality and the injected loss for one family of rollouts."""

    name: str
    requests_per_minute: float  # canary-eligible requests per minute, all tiers
    quality: float = 0.90  # base answer quality (1 - bad rate of quality signals)
    tier_shares: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    signals: tuple[Signal, ...] = (
        Signal("shadow", 0.25, 0.03, True),
        Signal("errors", 1.0, 0.02, False, base_bad=0.02),
    )
    drop: float = 0.0  # quality loss of the canary in ``drop_tier``
    drop_tier: int = 3  # the smallest tier by default
    other_tiers_gain: float = 0.0  # canary quality gain elsewhere (the Pareto trap)
    steps: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 1.0)
    holdback: float = 0.05
    bake_minutes: int = 30
    min_samples: int = 30  # per (tier, signal) and arm, within each stage
    max_step_minutes: int = 3 * 24 * 60
    horizon_minutes: int = 7 * 24 * 60  # a rollout still running after a week counts as paused
    family_alpha: float = 0.01
    min_share: float = 0.0  # canary share floor per tier (the sizing knob for low traffic)

    @property
    def n_gates(self) -> int:
        return len(self.tier_shares) * len(self.signals)

    def bad_rates(self) -> tuple[F64, F64]:
        """(control, canary) bad rates, shape tiers x signals."""
        k, s = len(self.tier_shares), len(self.signals)
        control = np.empty((k, s))
        canary = np.empty((k, s))
        for j, sig in enumerate(self.signals):
            base = sig.base_bad if sig.base_bad is not None else 1.0 - self.quality
            control[:, j] = base
            canary[:, j] = base
            if sig.quality_signal:
                for i in range(k):
                    if i == self.drop_tier:
                        canary[i, j] = base + self.drop
                    else:
                        canary[i, j] = max(base - self.other_tiers_gain, 0.0)
        return control, canary


@dataclass
class Outcome:
    """Per-run results of one simulated family of rollouts."""

    result: npt.NDArray[np.int64]  # ROLLED_BACK / PROMOTED / PAUSED
    stage: npt.NDArray[np.int64]  # stage index at the end (0 = first step)
    minutes: npt.NDArray[np.int64]  # minutes from start to the end
    canary_samples: F64  # canary outcomes of the drop tier's first quality signal
    control_samples: F64
    failing_tier: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def rate(self, code: int) -> float:
        return float(np.mean(self.result == code))


# ---------------------------------------------------------------------------- gates


class _Gates:
    """Per-method gate state for the active runs; arrays are (runs, tiers, signals)."""

    def __init__(self, method: Method, sc: Scenario, runs: int) -> None:
        self.method = method
        self.sc = sc
        k, s = len(sc.tier_shares), len(sc.signals)
        if method == "aggregate":
            k = 1
        self.shape = (runs, k, s)
        self.allowed = np.array([sig.allowed_drop for sig in sc.signals])
        n_tests = k * s
        self.alpha = st.alpha_per_test(sc.family_alpha, n_tests)
        self.level = math.log(1.0 / self.alpha)
        self.grids = [st.fail_grid(sig.allowed_drop) for sig in sc.signals]
        g = len(self.grids[0])
        self.grid_arr = np.array(self.grids)  # signals x grid points
        # The operator's default fail margin per SLO (half the allowed drop).
        self.fail_margin = np.array(
            [st.default_fail_margin(sig.allowed_drop) for sig in sc.signals]
        )
        self.log_fail = np.zeros((*self.shape, g))
        self.max_fail = np.full(self.shape, -np.inf)
        self.log_pass = np.zeros(self.shape)
        self.max_pass = np.zeros(self.shape)
        self.cum = np.zeros((4, *self.shape))  # bad_c, n_c, bad_t, n_t over all stages
        self.cum_clusters: F64 | None = None  # (4, runs, tiers, signals, clusters)
        self.deff = np.ones(self.shape)  # design effect per gate (tierguard)
        self.failed_checks = np.zeros(runs)  # threshold method
        self.window = np.zeros((THRESHOLD_WINDOW, 2, *self.shape))  # canary bad, total
        self.minute = 0

    def keep(self, idx: npt.NDArray[np.int64]) -> None:
        for name in ("log_fail", "max_fail", "log_pass", "max_pass", "failed_checks"):
            setattr(self, name, getattr(self, name)[idx])
        self.window = self.window[:, :, idx]
        self.cum = self.cum[:, idx]
        self.deff = self.deff[idx]
        if self.cum_clusters is not None:
            self.cum_clusters = self.cum_clusters[:, idx]
        self.shape = (len(idx), *self.shape[1:])

    def add(self, blk_clusters: F64) -> tuple[Bools, Bools]:
        """Add a block (4, runs, tiers, signals, user clusters); return (any gate failed
        per run, all gates pass per run). The e-processes see the arm totals; the
        tierguard method also tempers them by the design effect estimated from the
        per-cluster cumulative counts, as ``statistics.add_block`` does."""
        if self.method == "aggregate":
            blk_clusters = blk_clusters.sum(axis=2, keepdims=True)
        blk = blk_clusters.sum(axis=-1)
        if self.method == "tierguard" and blk_clusters.shape[-1] > 1:
            if self.cum_clusters is None:
                self.cum_clusters = np.zeros_like(blk_clusters)
            self.cum_clusters += blk_clusters
            cc = self.cum_clusters
            # (runs, tiers, signals, arms, clusters) for the vectorised estimator
            self.deff = de.design_effect(
                np.stack([cc[0], cc[2]], axis=-2), np.stack([cc[1], cc[3]], axis=-2)
            )
        bc, nc, bt, nt = blk
        pbc, pnc, pbt, pnt = self.cum
        if self.method in ("tierguard", "aggregate", "tierguard_unadjusted"):
            # Only blocks with outcomes in both arms move an e-process (with one arm empty
            # the null point equals the alternative and log e is exactly 0); at low
            # traffic most blocks are like that, so select them first, all signals in
            # one call (the kernels broadcast a per-gate grid and margin).
            live = (nc > 0) & (nt > 0)
            if live.any():
                lbc, lnc, lbt, lnt = bc[live], nc[live], bt[live], nt[live]
                sig = np.nonzero(live)[2]
                self.log_fail[live] += st.fail_block_log_e(
                    lbc,
                    lnc,
                    lbt,
                    lnt,
                    pbc[live],
                    pnc[live],
                    self.grid_arr[sig],
                    self.fail_margin[sig],
                )
                self.log_pass[live] += st.pass_block_log_e(
                    lbc,
                    lnc,
                    lbt,
                    lnt,
                    pbc[live],
                    pnc[live],
                    pbt[live],
                    pnt[live],
                    self.allowed[sig][:, None],
                )[:, 0]
            deff = self.deff
            self.max_fail = np.maximum(
                self.max_fail, st.log_mean_exp(self.log_fail / deff[..., None])
            )
            self.max_pass = np.maximum(self.max_pass, self.log_pass / deff)
        self.cum += blk
        cbc, cnc, cbt, cnt = self.cum
        if self.method in ("tierguard", "aggregate", "tierguard_unadjusted"):
            failed: Bools = np.asarray((self.max_fail >= self.level).any(axis=(1, 2)))
            # One margin per gate (the allowed drop): the confidence bound is within the
            # allowed drop exactly when that margin's null has been rejected.
            passed: Bools = np.asarray((self.max_pass >= self.level).all(axis=(1, 2)))
            return failed, passed
        if self.method == "naive":
            # One-sided two-proportion z-test on all data so far, every minute, at the
            # same per-gate alpha; normal approximation guarded by n >= 30 per arm.
            z_crit = _z_quantile(1 - self.alpha)
            with np.errstate(divide="ignore", invalid="ignore"):
                pc, pt = cbc / cnc, cbt / cnt
                pooled = (cbc + cbt) / (cnc + cnt)
                se = np.sqrt(pooled * (1 - pooled) * (1 / cnc + 1 / cnt))
                z = (pt - pc) / se
                ok = (cnc >= 30) & (cnt >= 30) & (se > 0)
                failed = np.asarray((ok & (z > z_crit)).any(axis=(1, 2)))
            return failed, np.ones(self.shape[0], dtype=bool)
        # threshold (Flagger / Argo style): each minute, the canary's bad rate over the
        # last THRESHOLD_WINDOW minutes must stay within base + allowed drop (the user
        # knows the base rate); fewer than 20 outcomes in the window counts as "no
        # values" and passes, as the common guards do; 5 failed checks roll back.
        # threshold_loose: what users do after noisy rollbacks — base + 2 x allowed drop
        # and 10 failed checks.
        self.window[self.minute % THRESHOLD_WINDOW] = np.stack([bt, nt])
        self.minute += 1
        w_bad, w_n = self.window.sum(axis=0)
        control, _ = self.sc.bad_rates()
        loose = self.method == "threshold_loose"
        limit = control[None] + (2.0 if loose else 1.0) * self.allowed[None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = w_bad / w_n
        bad_check = ((w_n >= 20) & (rate > limit)).any(axis=(1, 2))
        self.failed_checks += bad_check
        failure_limit = 10 if loose else 5
        return (np.asarray(self.failed_checks >= failure_limit), np.ones(self.shape[0], dtype=bool))


def _z_quantile(p: float) -> float:
    """Standard normal quantile by bisection on erf (no scipy needed)."""
    lo, hi = -10.0, 10.0
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < p:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def simulate(
    sc: Scenario,
    method: Method,
    runs: int,
    seed: int,
    progress: Callable[[int], None] | None = None,
    traffic: Callable[[Scenario, np.random.Generator, int], Traffic] | None = None,
) -> Outcome:
    """Run ``runs`` rollouts of ``sc`` judged by ``method``; vectorised over runs.
    ``traffic`` builds the outcome generator (default: independent requests)."""
    rng = np.random.default_rng(seed)
    draw = traffic(sc, rng, runs) if traffic is not None else independent_traffic(sc, rng)
    primary = next(j for j, sig in enumerate(sc.signals) if sig.quality_signal)
    tier = sc.drop_tier if method != "aggregate" else 0
    can_samples = np.zeros(runs)
    ctl_samples = np.zeros(runs)
    fail_tier = np.full(runs, -1, dtype=np.int64)
    gates = _Gates(method, sc, runs)

    def ended(d: Ints, done: Bools, failed: Bools) -> None:
        can_samples[d] = gates.cum[3][done][:, tier, primary]
        ctl_samples[d] = gates.cum[1][done][:, tier, primary]
        if method == "tierguard":
            worst = np.argmax(gates.max_fail[done].max(axis=2), axis=1)
            fail_tier[d] = np.where(failed[done], worst, -1)
        if progress is not None:
            progress(int(done.sum()))

    result, end_stage, end_minute = run_stages(sc, runs, draw, gates.add, gates.keep, ended)
    return Outcome(result, end_stage, end_minute, can_samples, ctl_samples, fail_tier)


# ---------------------------------------------------------------------------- study


#: Seed 003: a support agent for a SaaS product with ~4 M monthly active users, a
#: six-figure monthly bill, 65 % of queries "simple". Assumed: ~5 M agent requests a
#: month (a $150 k bill at ~$0.03 a request) = ~115 requests/min on average, of which
#: 65 % (~75/min) are simple and eligible for the cheap model.
SEED_003_RPM = 75.0

TRAFFIC_LEVELS: tuple[tuple[str, float], ...] = (
    ("small team", 20.0),
    ("seed 003 (4M MAU support agent)", SEED_003_RPM),
    ("mid-size", 300.0),
    ("large", 1500.0),
)
QUALITY_LEVELS: tuple[float, ...] = (0.80, 0.90, 0.97)


def study_scenarios(kind: Literal["aa", "drop", "pareto"]) -> list[Scenario]:
    """The study's grid: every traffic level at 90 % quality, plus 80 % and 97 % quality
    at 300 requests/min."""
    out: list[Scenario] = []
    for label, rpm in TRAFFIC_LEVELS:
        out.append(_scenario(kind, label, rpm, 0.90))
    for q in QUALITY_LEVELS:
        if q != 0.90:
            out.append(_scenario(kind, MID_LABEL, MID_RPM, q))
    return out


SEED_LABEL = TRAFFIC_LEVELS[1][0]
MID_LABEL, MID_RPM = TRAFFIC_LEVELS[2]


def _scenario(kind: str, label: str, rpm: float, quality: float) -> Scenario:
    sc = Scenario(
        name=f"{label}, {rpm:g} req/min, quality {quality:.0%}",
        requests_per_minute=rpm,
        quality=quality,
    )
    if kind == "drop":
        sc = replace(sc, drop=0.05)
    elif kind == "pareto":
        # One tier (10 % of traffic) loses 5 points, the others gain 0.6: the aggregate
        # moves by 0.1 x 5 - 0.9 x 0.6 = -0.04 points, i.e. it looks flat or better.
        sc = replace(sc, drop=0.05, other_tiers_gain=0.006)
    return sc


def summarise(out: Outcome, sc: Scenario) -> dict[str, float | list[float] | None]:
    """Figures for the table: rates of each ending and detection statistics."""
    rb = out.result == ROLLED_BACK
    stages = [float(np.mean(rb & (out.stage == i))) for i in range(len(sc.steps))]
    return {
        "rolled_back": float(rb.mean()),
        "promoted": out.rate(PROMOTED),
        "paused": out.rate(PAUSED),
        "rolled_back_by_stage": stages,
        "median_minutes_to_rollback": float(np.median(out.minutes[rb])) if rb.any() else None,
        "median_canary_samples_at_rollback": float(np.median(out.canary_samples[rb]))
        if rb.any()
        else None,
        "median_minutes_to_promotion": float(np.median(out.minutes[out.result == PROMOTED]))
        if (out.result == PROMOTED).any()
        else None,
        "runs": float(len(out.result)),
    }


def wilson_halfwidth(rate: float, runs: int, z: float = 3.0) -> float:
    """A Monte Carlo tolerance for comparing a recomputed rate with a recorded one."""
    return z * math.sqrt(max(rate * (1 - rate), 1.0 / runs) / runs)


def steps_label(steps: Sequence[float]) -> str:
    return "/".join(f"{w:.0%}" for w in steps)


def replace_block(doc: Path, begin: str, end: str, body: str, *, heading: str = "") -> None:
    """Write ``body`` between the ``begin`` and ``end`` markers of ``doc`` (the studies'
    tables in docs/benchmarks.md). Without the markers the block goes under ``heading``
    if the document has it, else at the end (after ``heading`` when one is given)."""
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    block = f"{begin}\n{body}\n{end}"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    elif heading and heading in text:
        text = text.replace(heading, f"{heading}\n\n{block}", 1)
    else:
        title = f"{heading}\n\n" if heading else ""
        text = text.rstrip("\n") + f"\n\n{title}{block}\n"
    doc.write_text(text)
