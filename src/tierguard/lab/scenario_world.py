"""The lab's world: who answers, how well, at what price, and what a scenario is made of.

The two answering fake providers (:data:`CHEAP`, :data:`CAPABLE`) and their prices and
per-category quality, the two tiers, and the frozen types every scenario is built from:
:class:`ProviderProfile` (a provider's quality, latency and failures),
:class:`TrafficSpec` (the simulated users), :class:`Event` (what happens to the world
during a run), :class:`Expectation` (how the rollout must end) and :class:`Scenario`.
:func:`fake_provider_profile` writes a profile in the fake provider's own format. The
scenarios themselves are in :mod:`tierguard.lab.scenarios` (and its ``scenario_*``
variants), the policy the lab applies in :mod:`tierguard.lab.lab_policy`. Pure data and
pure functions: nothing here starts a process or opens a socket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from tierguard.api.enums import Phase, Signal
from tierguard.classifier.dataset import CATEGORIES

#: Names of the two answering fake providers and of their models in the lab's policy (the
#: third, the judge, is in lab/judge.py).
CHEAP: Final = "cheap"
CAPABLE: Final = "capable"
SIMPLE: Final = "simple"
COMPLEX: Final = "complex"

#: Prices (USD per 1M tokens). The cheap model costs about a quarter of the capable one per
#: token on a typical prompt/completion mix, as in seed 003... and then some: these are
#: the list prices of a 2026 "mini" and "large" model pair.
CAPABLE_PRICE: Final = (2.5, 10.0)
CHEAP_PRICE: Final = (0.6, 2.4)

#: Capable model: good on simple queries, a little less so on the hard complex ones.
CAPABLE_SIMPLE_QUALITY: Final = 0.95
CAPABLE_COMPLEX_QUALITY: Final = 0.90
#: A cheap model is much worse on genuinely complex queries; those reach it only when the
#: classifier calls a complex query simple (seed 003's "hard" cases).
CHEAP_COMPLEX_QUALITY: Final = 0.65

#: The model id both fake providers serve. The fake provider draws "is this answer good"
#: from a hash of (model id, prompt) against the category's quality; one shared id makes
#: that draw a property of the *query* (its difficulty), the same for both providers, so
#: two equally good models answer exactly the same queries well (an A/A pair never
#: disagrees for real) and a worse model fails a superset of the queries the better one
#: fails. The policy's model names (cheap, capable), prices and URLs still differ.
UPSTREAM_MODEL: Final = "support-assistant-2026"


class ScenarioError(ValueError):
    """An unknown scenario name or an inconsistent scenario definition."""


@dataclass(frozen=True)
class ProviderProfile:
    """How one fake provider behaves: quality per category, latency and failures.

    ``quality`` maps every seed-003 category to the probability of a good answer.
    ``latency_ms`` is the median time to answer; ``latency_jitter`` the relative spread
    (lognormal sigma). ``error_rate`` answers 500; ``rate_limited_rate`` answers 429.
    """

    name: str
    quality: Mapping[str, float]
    latency_ms: float = 300.0
    latency_jitter: float = 0.3
    error_rate: float = 0.0
    rate_limited_rate: float = 0.0

    def __post_init__(self) -> None:
        missing = sorted(set(CATEGORIES) - set(self.quality))
        if missing:
            raise ScenarioError(f"provider {self.name}: no quality for categories {missing}")
        for cat, q in self.quality.items():
            if not 0.0 <= q <= 1.0:
                raise ScenarioError(f"provider {self.name}: quality[{cat}]={q} not in [0, 1]")
        for what in ("error_rate", "rate_limited_rate"):
            if not 0.0 <= getattr(self, what) <= 1.0:
                raise ScenarioError(f"provider {self.name}: {what} must be in [0, 1]")

    def with_(self, **changes: Any) -> ProviderProfile:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON (what the fake provider's profile endpoint takes)."""
        return {
            "name": self.name,
            "quality": dict(self.quality),
            "latency_ms": self.latency_ms,
            "latency_jitter": self.latency_jitter,
            "error_rate": self.error_rate,
            "rate_limited_rate": self.rate_limited_rate,
        }


EventKind = Literal[
    "prometheus_stop", "prometheus_start", "provider_profile", "classifier_threshold"
]


@dataclass(frozen=True)
class Event:
    """Something the lab does to the world during a run.

    It fires ``after_s`` seconds after the rollout first reaches step index ``at_step``
    (0-based; 1 is the 10 % stage), so "mid-stage" means the same thing however fast the
    machine is. ``provider`` and ``profile`` are used by ``provider_profile`` events,
    ``threshold`` by ``classifier_threshold`` events (the simple tier's new threshold in
    the policy's ``spec.classifier``: a classifier change, threshold-trap).
    """

    kind: EventKind
    at_step: int
    after_s: float
    label: str
    provider: str | None = None
    profile: ProviderProfile | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "provider_profile" and (self.provider is None or self.profile is None):
            raise ScenarioError(f"event {self.label!r}: provider_profile needs provider+profile")
        if self.kind == "classifier_threshold" and not 0.0 < (self.threshold or 0.0) < 1.0:
            raise ScenarioError(f"event {self.label!r}: classifier_threshold needs a threshold")


@dataclass(frozen=True)
class TrafficSpec:
    """The simulated users: how many, how fast, how often they rate an answer."""

    requests_per_second: float = 80.0
    users: int = 600
    #: mean number of requests in one user session (a conversation of a few turns)
    session_length: float = 3.0
    #: share of answers a user rates (thumbs up or down); seed-003-like products see 10-20 %
    rating_rate: float = 0.15
    #: most requests a generator keeps in flight (protects a 2-core machine)
    max_in_flight: int = 64
    seed: int = 3
    #: sessions are conversations (history resent, simple follow-ups, agent loops; see
    #: lab/conversations.py); False: every request is a lone question
    conversations: bool = True
    #: category -> share of its queries kept in the query pool (thinned deterministically;
    #: unlisted categories keep all): shapes a category's share of its tier
    category_keep: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.requests_per_second <= 0 or self.users <= 0 or self.session_length < 1:
            raise ScenarioError("traffic: rate, users and session length must be positive")
        if not 0.0 <= self.rating_rate <= 1.0:
            raise ScenarioError("traffic: rating_rate must be in [0, 1]")
        for cat, keep in self.category_keep.items():
            if cat not in CATEGORIES or not 0.0 < keep <= 1.0:
                raise ScenarioError(f"traffic: category_keep[{cat}]={keep} (category, (0, 1])")


@dataclass(frozen=True)
class Expectation:
    """How the rollout should end, read from the RoutingPolicy's status."""

    phase: Phase
    failed_tier: str | None = None
    failed_signal: Signal | None = None
    #: the rollback must happen at or before this step index (0-based), if set
    max_step: int | None = None
    #: the pre-flight stage must end like this ("Passed" or "Failed"), if set; "Failed"
    #: also means the candidate served no user at all
    preflight: Literal["Passed", "Failed"] | None = None
    #: the failing gate must be this slice gate ("topic=opening_hours"), if set
    failed_slice: str | None = None
    #: the classifier canary's failing transition cell ("complex→simple"), if set
    failed_cell: str | None = None


@dataclass(frozen=True)
class Scenario:
    """One lab run: the world, the traffic and the expected outcome."""

    name: str
    title: str
    story: str
    cheap: ProviderProfile
    capable: ProviderProfile
    expect: Expectation
    events: tuple[Event, ...] = ()
    traffic: TrafficSpec = field(default_factory=TrafficSpec)
    #: give up (and report a timeout) after this many seconds of rollout
    deadline_s: float = 420.0
    #: judge with an aggregate-only gate instead of per-tier gates (--compare-naive)
    naive: bool = False
    #: run pre-flight (mirrored requests judged pairwise at 0 % exposure) before the first
    #: weighted step (preflight-trap, --preflight); off: the lab shows the weighted stages
    preflight: bool = False
    #: the rollout's steps (None: LAB_STEPS)
    steps: tuple[float, ...] | None = None
    #: the rollout's bakeTime (None: LAB_BAKE_TIME)
    bake_time: str | None = None
    #: judge with slice gates (slice-trap: scenario_slices.py): the Agreement judge, an
    #: Absolute ShadowDisagreement SLO and a Classifier-sourced slice
    slice_gates: bool = False
    #: name the bundled classifier with this simple-tier threshold and roll classifier
    #: changes out with a short decision shadow and a classifier canary (threshold-trap:
    #: scenario_threshold.py); None: the policy names no classifier (the bundled default)
    classifier_threshold: float | None = None

    def __post_init__(self) -> None:
        edits = any(e.kind == "classifier_threshold" for e in self.events)
        if edits and self.classifier_threshold is None:
            raise ScenarioError(f"{self.name}: a threshold edit needs classifier_threshold")


def capable_profile() -> ProviderProfile:
    q = {
        c: (CAPABLE_SIMPLE_QUALITY if t == SIMPLE else CAPABLE_COMPLEX_QUALITY)
        for c, t in CATEGORIES.items()
    }
    return ProviderProfile(CAPABLE, q, latency_ms=450.0, latency_jitter=0.35)


def cheap_profile(**overrides: float) -> ProviderProfile:
    """As good as the capable model on simple categories, worse on complex ones;
    ``overrides`` set single categories (``billing_status=0.65``)."""
    q = {
        c: (CAPABLE_SIMPLE_QUALITY if t == SIMPLE else CHEAP_COMPLEX_QUALITY)
        for c, t in CATEGORIES.items()
    }
    for cat, value in overrides.items():
        if cat not in q:
            raise ScenarioError(f"unknown category {cat!r}; known: {sorted(q)}")
        q[cat] = value
    return ProviderProfile(CHEAP, q, latency_ms=150.0, latency_jitter=0.3)


def fake_provider_profile(profile: ProviderProfile, seed: int = 0) -> dict[str, Any]:
    """``profile`` in the fake provider's own format (its ``--profile`` file and its
    ``PUT /admin/profile`` body)."""
    return {
        "seed": seed,
        "models": {
            "*": {
                "latency_median_s": profile.latency_ms / 1000.0,
                "latency_sigma": profile.latency_jitter,
                "error_rate": profile.error_rate,
                "rate_limit_rate": profile.rate_limited_rate,
                "quality": dict(profile.quality),
                "default_quality": min(profile.quality.values()),
            }
        },
    }
