"""The gates' plain types and alpha helpers (see :mod:`tierguard.operator.gates`): what a
gate is (:class:`GateSpec`), what one look at Prometheus returned (:class:`GateReading`,
:class:`Observations`) and a gate's verdict with its figures (:class:`GateOutcome`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from tierguard.api.enums import Signal, Verdict
from tierguard.api.policy import CustomQuery
from tierguard.operator import statistics as st
from tierguard.operator.cellgates import CellCounts
from tierguard.operator.classifiercontent import RouterReports
from tierguard.operator.decisionshadow import TransitionCounts

if TYPE_CHECKING:
    from tierguard.operator.judgehealth import JudgeHealth

#: Series per counter kept in a gate's last readings. Series that vanish from a query
#: (a scrape failed, a pod went away) are carried forward so that when they come back only
#: their real increase is counted; the oldest carried ones are dropped beyond this.
#: Series are per router instance and user cluster (16 clusters).
MAX_SERIES = 256
#: Length of one post-promotion watch window: each window is a fresh e-process.
WATCH_WINDOW_S = 24 * 3600.0
#: Signals judged per slice value too (analysis.slices): those whose counters the routers
#: export per slice (slice_requests/feedback/shadow_judgements_total). Latency, Custom and
#: pairwise judgements stay tier-level.
SLICED_SIGNALS = frozenset({Signal.ERROR_RATE, Signal.THUMBS_DOWN, Signal.SHADOW_DISAGREEMENT})


def watch_alpha(family_alpha: float, window: int) -> float:
    """Alpha spent by post-promotion watch window ``window`` (1, 2, ...):
    ``alpha / (window (window + 1))``, which sums to ``alpha`` over all windows."""
    if window < 1:
        raise ValueError(f"watch windows count from 1, got {window}")
    return family_alpha / (window * (window + 1))


@dataclass(frozen=True)
class GateSpec:
    """One gate as the policy defines it."""

    key: str
    tier: str
    signal: Signal
    absolute: bool
    allowed: float  # allowed increase of the bad rate, or the absolute ceiling
    fail_margin: float | None = None  # relative gates: tolerated loss before FAIL
    latency_objective: float | None = None  # seconds, for Signal.LATENCY
    query: CustomQuery | None = None
    fingerprint: str = ""
    #: ShadowDisagreement with a Pairwise judge: the paired test (operator/pairedgate.py)
    pairwise: bool = False
    max_inconsistency: float = 1.0  # judge health limits (pairwise only)
    max_error_rate: float = 1.0
    #: slice gates: the slice's name and value (None: the tier's own gate)
    slice_name: str | None = None
    slice_value: str | None = None
    #: slice gates: samples per arm a value must reach before a stage may advance (None:
    #: the slice never holds a stage on its own; only a confident Fail counts)
    slice_min_samples: int | None = None

    @property
    def slice(self) -> str | None:
        """``name=value`` of a slice gate."""
        return None if self.slice_name is None else f"{self.slice_name}={self.slice_value}"


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True)
class GateReading:
    """Raw cumulative counters of one gate, per arm (``control``/``holdback``/``canary``),
    each ``{series key: value}``; or why there are none."""

    arms: Mapping[str, st.ArmReading] = field(default_factory=dict)
    error: str | None = None
    #: The routers' request counters for this gate's tier exist: traffic flows, so a
    #: signal without events yet (no ratings, nothing judged) is a quiet signal, not
    #: missing data.
    requests_flowing: bool = False
    #: pairwise gates: the canary's verdict counters, ``verdict -> {series: value}``
    verdicts: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """No series at all for this gate: the routers have reported nothing yet."""
        return not any(r.total for r in self.arms.values()) and not any(self.verdicts.values())


@dataclass(frozen=True)
class Observations:
    """What one look at Prometheus returned. ``error`` set: Prometheus was unreachable or
    failed, and every gate has no data this interval."""

    at: datetime
    gates: Mapping[str, GateReading] = field(default_factory=dict)
    error: str | None = None
    #: which classifier each router reports (None: not read, no check)
    routers: RouterReports | None = None
    #: pre-flight spend counters, ``tier -> {series: cumulative USD}`` (None: not read)
    preflight_spend: Mapping[str, Mapping[str, float]] | None = None
    #: requests a minute per tier, to size pre-flight's sample rates (None: not read)
    preflight_traffic: Mapping[str, float] | None = None
    #: the decision shadow's transition matrix (None: not read)
    transitions: TransitionCounts | None = None
    #: the classifier canary's per-cell counters (None: not read)
    cells: CellCounts | None = None


# --------------------------------------------------------------------------- outcomes


@dataclass(frozen=True)
class GateOutcome:
    """A gate's verdict now and the figures behind it."""

    key: str
    tier: str
    signal: Signal
    verdict: Verdict
    message: str
    control_samples: float = 0.0
    control_bad: float = 0.0
    canary_samples: float = 0.0
    canary_bad: float = 0.0
    control_rate: float | None = None
    canary_rate: float | None = None
    upper_bound: float | None = None
    allowed: float = 0.0
    e_value: float | None = None
    threshold: float | None = None
    step_control: float = 0.0
    step_canary: float = 0.0
    design_effect: float = 1.0
    provider_error: bool = False  # NoData because a query failed (not just no traffic)
    judge: JudgeHealth | None = None  # pairwise gates
    slice: str | None = None  # name=value of a slice gate
    #: False for a slice gate without minSamples: its Inconclusive never holds a stage
    blocking: bool = True
    alpha: float | None = None  # this gate's share of the family budget

    @property
    def where(self) -> str:
        """``tier simple`` or ``tier simple, slice category=billing_status``."""
        return f"tier {self.tier}" + (f", slice {self.slice}" if self.slice else "")

    @property
    def lets_advance(self) -> bool:
        """Pass, or a non-blocking slice gate that has not failed."""
        if self.verdict == Verdict.PASS:
            return True
        return not self.blocking and self.verdict == Verdict.INCONCLUSIVE

    def figures(self) -> str:
        """One line an SRE can act on: rates, samples, bound and evidence."""

        def rate(r: float | None) -> str:
            return "n/a" if r is None else f"{r:.3f}"

        parts = [
            f"canary {rate(self.canary_rate)} (n={self.canary_samples:.0f})",
            f"control {rate(self.control_rate)} (n={self.control_samples:.0f})",
        ]
        if self.upper_bound is not None:
            parts.append(f"upper bound {self.upper_bound:+.3f} vs allowed {self.allowed:.3f}")
        if self.e_value is not None and self.threshold is not None:
            parts.append(f"e-value {self.e_value:.3g} (threshold {self.threshold:.3g})")
        if self.design_effect > 1.0:
            parts.append(f"design effect {self.design_effect:.2f}")
        return ", ".join(parts)


def family_alpha(confidence: float) -> float:
    return 1.0 - confidence
