"""The lab's scenarios: pure data that says what the simulated world looks like.

A scenario fixes everything the lab varies between runs: how good each fake provider is
on each seed-003 category, how fast and how reliable it is, which outages happen when,
how much traffic the simulated users send, and what the rollout is expected to end in.
Nothing here starts a process or opens a socket, so every scenario is unit-tested and the
supervisor only executes what is written here.

Time compression. In production a stage bakes for hours at a few requests per second
(seed 003: a week per stage). The lab keeps the *shape* of that rollout -- steps
5/10/25/50/100 %, a control arm, per-tier gates, the same operator and router code -- and
compresses time in three honest ways that are all visible in the policy it applies:
short bake time and evaluation interval, a high request rate from many simulated users,
and shadow evaluation of every canary request (``router.shadow.sampleRate: 1``). Explicit
feedback stays at realistic rates (about 15 % of answers rated), which is why the lab's
policy does not gate on ``ThumbsDown``: at 5 % of a lab-sized stream thumbs are too sparse
to judge a stage in seconds (the thumbs are still counted, plotted and reported, and the
production example ``examples/kubernetes/policies/support-assistant.yaml`` gates on them).

Quality model. A provider answers a query of category *c* well with probability
``quality[c]``. The simulated user of that request is satisfied exactly when the answer
was good; a rating user gives thumbs-down when not satisfied. The numbers below are chosen
so that the lab reproduces seed 003: the ``pareto-trap`` cheap model is as good as the
capable one everywhere except ``billing_status``, a category the classifier rightly calls
simple, where it answers 50 points worse. That costs the simple tier's canary arm 8 to 11
points of satisfaction (depending on how much of billing_status the classifier keeps in
the simple tier) but moves the whole product's satisfaction by at most 0.14 x 50 = 7
points even at 100 % -- and by 0.35 points at the 5 % stage, which is what an aggregate
dashboard or an aggregate-only gate sees.

How the gate sees it. The lab's policy gates the simple tier's canary on
``ShadowDisagreement`` judged by a *pairwise* LLM judge (a third fake provider in judge
mode, :mod:`tierguard.lab.judge`): every canary answer is shadowed, the judge compares it
with the baseline's answer to the same request in both orders, and the operator's paired
sequential test holds the net share of worse canary answers to ``allowedDrop`` (3 %),
failing once it is confidently above half of that. In ``pareto-trap`` about half of the
billing_status pairs are "canary worse", 8 to 11 % of the simple tier's pairs; in
``healthy`` both models fail the same queries, so every pair is a tie.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Final, Literal

from tierguard.api.enums import Phase, Signal
from tierguard.classifier.dataset import CATEGORIES, CATEGORY_WEIGHTS, COMPLEX_CATEGORIES
from tierguard.lab import judge as lab_judge
from tierguard.lab import scenario_slices as sl
from tierguard.lab import scenario_threshold as th
from tierguard.lab.scenario_preflight import lab_preflight
from tierguard.lab.scenario_preflight import preflight_variant as preflight_variant

#: Names of the two answering fake providers and of their models in the lab's policy (the
#: third, the judge, is in lab/judge.py).
CHEAP: Final = "cheap"
CAPABLE: Final = "capable"
POLICY_NAME: Final = "support-lab"
NAMESPACE: Final = "tierguard-lab"
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
#: ``healthy``'s time scale: the share of each complex category's queries kept in the
#: traffic, and its bake time.
HEALTHY_COMPLEX_KEEP: Final = 0.3
HEALTHY_BAKE_TIME: Final = "10s"
#: The category the cheap model fails in ``pareto-trap`` and how badly.
TRAP_CATEGORY: Final = "billing_status"
TRAP_QUALITY: Final = 0.45


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


# --------------------------------------------------------------------------- profiles


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


# --------------------------------------------------------------------------- the scenarios


def _healthy() -> Scenario:
    return Scenario(
        name="healthy",
        title="A cheap model that really is as good on simple queries",
        story=(
            "The cheap model answers simple queries as well as the capable one. Every stage "
            "passes its per-tier gates and the candidate is promoted to 100 % (minus the "
            "holdback); the report shows the saving."
        ),
        cheap=cheap_profile(),
        capable=capable_profile(),
        expect=Expectation(Phase.PROMOTED),
        # Time-scaled, all five steps kept: the 5 % stage waits for about 250 judged
        # pairs (every one a tie), and pairs come only from the simple tier's canary, so
        # the complex categories are thinned (the simple tier gets about 1.5 times the
        # pairs a second) and the later stages, which gather theirs in seconds, bake 10 s.
        traffic=TrafficSpec(category_keep=dict.fromkeys(COMPLEX_CATEGORIES, HEALTHY_COMPLEX_KEEP)),
        bake_time=HEALTHY_BAKE_TIME,
    )


def _pareto_trap() -> Scenario:
    return Scenario(
        name="pareto-trap",
        title="Seed 003: the cheap model fails one slice of 'simple' traffic",
        story=(
            f"The cheap model is as good as the capable one except on {TRAP_CATEGORY}, a "
            f"category the classifier calls simple, where it answers well only "
            f"{TRAP_QUALITY:.0%} of the time instead of {CAPABLE_SIMPLE_QUALITY:.0%}. The "
            "simple tier's canary loses 8 to 11 points; the aggregate across tiers moves "
            "by a fraction of a point at the first stages. The pairwise judge finds the "
            "canary's answers worse than the baseline's; the simple tier's gate rolls the "
            "rollout back at an early stage and names the tier."
        ),
        cheap=cheap_profile(**{TRAP_CATEGORY: TRAP_QUALITY}),
        capable=capable_profile(),
        expect=Expectation(
            Phase.ROLLED_BACK,
            failed_tier=SIMPLE,
            failed_signal=Signal.SHADOW_DISAGREEMENT,
            max_step=2,
        ),
    )


def _preflight_trap() -> Scenario:
    trap = preflight_variant(_pareto_trap())
    return replace(
        trap,
        name="preflight-trap",
        title="Seed 003 caught at pre-flight: no user is ever served by the cheap model",
        story=(
            f"The world of pareto-trap (the cheap model answers {TRAP_CATEGORY} well only "
            f"{TRAP_QUALITY:.0%} of the time), with pre-flight on. Every user is served by "
            "the capable model; for a sample of the simple tier's stateless requests the "
            "routers also ask the cheap model, never showing its answer, and the pairwise "
            "judge compares the two. The simple tier's paired gate fails on the mirrored "
            "pairs: the rollout is rolled back at pre-flight with 0 users exposed."
        ),
    )


def _aa() -> Scenario:
    cap = capable_profile()
    return Scenario(
        name="aa",
        title="A/A: candidate and baseline are the same model",
        story=(
            "Both arms are served by identical providers, so every difference is noise. "
            "The rollout must be promoted; repeated runs (--repeat N) measure the "
            "false-rollback rate, which the gates keep under the policy's 1 - confidence."
        ),
        cheap=cap.with_(name=CHEAP),
        capable=cap,
        expect=Expectation(Phase.PROMOTED),
    )


def _prometheus_outage() -> Scenario:
    return Scenario(
        name="prometheus-outage",
        title="Prometheus stops in the middle of a stage",
        story=(
            "Prometheus is stopped 5 s into the 10 % stage and started again 25 s later. "
            "The operator holds the stage (NoData, never a promotion on missing data), "
            "says so in status, and continues when data is back; the healthy candidate "
            "is then promoted."
        ),
        cheap=cheap_profile(),
        capable=capable_profile(),
        expect=Expectation(Phase.PROMOTED),
        events=(
            Event("prometheus_stop", at_step=1, after_s=5.0, label="Prometheus stopped"),
            Event("prometheus_start", at_step=1, after_s=30.0, label="Prometheus back"),
        ),
    )


def _provider_outage() -> Scenario:
    cheap = cheap_profile()
    return Scenario(
        name="provider-outage",
        title="The cheap provider answers 429 for a while",
        story=(
            "5 s into the 10 % stage the cheap provider starts answering 429 Too Many "
            "Requests to most calls for 40 s. The router falls back to the capable model "
            "within the latency budget, so users barely notice, but every fallback counts "
            "against the canary in the ErrorRate gate, which decides: the rollout is "
            "rolled back on the simple tier's ErrorRate while latency stays within budget."
        ),
        cheap=cheap,
        capable=capable_profile(),
        expect=Expectation(Phase.ROLLED_BACK, failed_tier=SIMPLE, failed_signal=Signal.ERROR_RATE),
        events=(
            Event(
                "provider_profile",
                at_step=1,
                after_s=5.0,
                label="cheap provider: 429 on 90 % of calls",
                provider=CHEAP,
                profile=cheap.with_(rate_limited_rate=0.9),
            ),
            Event(
                "provider_profile",
                at_step=1,
                after_s=45.0,
                label="cheap provider recovered",
                provider=CHEAP,
                profile=cheap,
            ),
        ),
    )


SCENARIOS: Final[dict[str, Scenario]] = {
    s.name: s
    for s in (
        _healthy(),
        _pareto_trap(),
        _preflight_trap(),
        sl.slice_trap(),
        th.threshold_trap(),
        _aa(),
        _prometheus_outage(),
        _provider_outage(),
    )
}


def get(name: str) -> Scenario:
    """The scenario called ``name``; the error lists the valid names."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise ScenarioError(
            f"unknown scenario {name!r}; choose one of: {', '.join(SCENARIOS)}"
        ) from None


def naive_variant(scenario: Scenario) -> Scenario:
    """The same world judged by an aggregate-only gate (``--compare-naive``).

    Expected outcome: promoted -- that is the point of the comparison.
    """
    return replace(
        scenario,
        name=f"{scenario.name}-naive",
        title=f"{scenario.title} (aggregate-only gate)",
        naive=True,
        preflight=False,
        expect=Expectation(Phase.PROMOTED),
    )


# --------------------------------------------------------------------------- expected figures


def tier_quality(profile: ProviderProfile, tier: str) -> float:
    """Expected share of good answers of ``profile`` over one tier's categories (pure)."""
    cats = [c for c, t in CATEGORIES.items() if t == tier]
    total = sum(CATEGORY_WEIGHTS[c] for c in cats)
    return sum(CATEGORY_WEIGHTS[c] * profile.quality[c] for c in cats) / total


def aggregate_quality(simple: ProviderProfile, complex_: ProviderProfile, weight: float) -> float:
    """Expected product-wide satisfaction when ``weight`` (0..1) of the simple tier is on
    ``simple`` and the rest of the simple tier plus all complex traffic on ``complex_``."""
    out = 0.0
    for cat, tier in CATEGORIES.items():
        w = CATEGORY_WEIGHTS[cat]
        if tier == SIMPLE:
            out += w * (weight * simple.quality[cat] + (1 - weight) * complex_.quality[cat])
        else:
            out += w * complex_.quality[cat]
    return out


# --------------------------------------------------------------------------- the lab policy

#: Compressed rollout: the same steps as production, seconds instead of hours.
LAB_STEPS: Final = (5.0, 10.0, 25.0, 50.0, 100.0)
LAB_INTERVAL: Final = "5s"
LAB_BAKE_TIME: Final = "20s"
LAB_MIN_SAMPLES: Final = 100
#: Conversations keep their highest tier, so the simple tier gets about 55 % of requests
#: (not 65 %): at 80 requests/s a 5 % canary is shadowed about 2 times a second, about 1 on
#: a busy 2-core machine; the pairwise gate needs 100 to 300 judged pairs to fail the pareto
#: trap (and the ErrorRate gate about 250 canary requests to pass a healthy stage).
LAB_MAX_STEP_DURATION: Final = "8m"
LAB_NO_DATA_AFTER: Final = "90s"
LAB_LATENCY_OBJECTIVE: Final = "1500ms"
LAB_LATENCY_BUDGET: Final = "1s"
#: The aggregate-only gate of --compare-naive: product-wide thumbs-down share must stay
#: under this ceiling ("the green range" of seed 003's dashboards; Flagger's thresholdRange).
NAIVE_THUMBS_DOWN_CEILING: Final = 0.15

SYSTEM_PROMPT: Final = "You are Acme's support assistant. Answer briefly and kindly."

#: The model id both fake providers serve. The fake provider draws "is this answer good"
#: from a hash of (model id, prompt) against the category's quality; one shared id makes
#: that draw a property of the *query* (its difficulty), the same for both providers, so
#: two equally good models answer exactly the same queries well (an A/A pair never
#: disagrees for real) and a worse model fails a superset of the queries the better one
#: fails. The policy's model names (cheap, capable), prices and URLs still differ.
UPSTREAM_MODEL: Final = "support-assistant-2026"


def scenario_steps(scenario: Scenario) -> tuple[float, ...]:
    """The rollout steps of ``scenario``'s policy."""
    return scenario.steps or LAB_STEPS


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


def naive_queries(policy: str) -> dict[str, str]:
    """PromQL of the aggregate-only gate: thumbs-down over all tiers and arms.

    It deliberately names neither ``$tier`` nor ``$arm``: that is what a gate configured
    on the service as a whole (Flagger, Argo Rollouts) measures. It keeps one series per
    router (``by (instance)``), as the operator requires of Custom queries so that one
    replica's restart is not read as the whole sum resetting.
    """
    sel = f'policy="{policy}"'
    return {
        "bad": f'sum by (instance) (tierguard_feedback_total{{{sel},rating="down"}})',
        "total": f"sum by (instance) (tierguard_feedback_total{{{sel}}})",
    }


def lab_policy(
    scenario: Scenario,
    *,
    cheap_url: str,
    capable_url: str,
    judge_url: str,
    prometheus_url: str,
    secret_name: str = "lab-provider-keys",
    name: str = POLICY_NAME,
    namespace: str = NAMESPACE,
    replicas: int = 2,
) -> dict[str, Any]:
    """The RoutingPolicy manifest the lab applies (validated by the caller with the API
    models, and by the API server itself)."""
    if scenario.naive:
        slos: list[dict[str, Any]] = [
            {
                "tier": SIMPLE,
                "signal": Signal.CUSTOM.value,
                "objective": "Absolute",
                "threshold": NAIVE_THUMBS_DOWN_CEILING,
                "query": naive_queries(name),
            }
        ]
    else:
        slos = [
            # The pairwise judge compares every shadowed canary answer with the baseline's
            # answer to the same request; the paired test holds the net share of worse
            # canary answers to allowedDrop (lab/judge.py, operator/pairedgate.py).
            {
                "tier": SIMPLE,
                "signal": Signal.SHADOW_DISAGREEMENT.value,
                "objective": "RelativeToControl",
                "allowedDrop": lab_judge.PAIRWISE_ALLOWED_DROP,
            },
            {"tier": SIMPLE, "signal": Signal.ERROR_RATE.value, "allowedDrop": 0.02},
            {
                "tier": SIMPLE,
                "signal": Signal.LATENCY.value,
                "latencyObjective": LAB_LATENCY_OBJECTIVE,
                "allowedDrop": 0.05,
            },
        ]
    judge = lab_judge.pairwise_judge()
    analysis: dict[str, Any] = {"confidence": 0.95, "slos": slos}
    if scenario.slice_gates and not scenario.naive:
        # the Agreement judge's counters carry the slice label (the pairwise judge's do not)
        slos[0] = sl.disagreement_slo(SIMPLE)
        judge = sl.agreement_judge()
        analysis["slices"] = sl.slice_specs()

    def model(model_name: str, url: str, price: tuple[float, float]) -> dict[str, Any]:
        return {
            "name": model_name,
            "baseURL": url,
            "upstreamModel": UPSTREAM_MODEL,
            "apiKeySecretRef": {"name": secret_name, "key": model_name},
            "pricing": {"inputPerMillionTokens": price[0], "outputPerMillionTokens": price[1]},
            "timeout": "10s",
            "systemPrompt": SYSTEM_PROMPT,
        }

    rollout: dict[str, Any] = {
        "steps": list(scenario_steps(scenario)),
        "interval": LAB_INTERVAL,
        "bakeTime": scenario.bake_time or LAB_BAKE_TIME,
        "minSamplesPerArm": LAB_MIN_SAMPLES,
        "maxStepDuration": LAB_MAX_STEP_DURATION,
        "holdbackPercent": 5,
        "noData": {"after": LAB_NO_DATA_AFTER, "action": "Pause"},
        # Most scenarios show the weighted stages, so pre-flight is off on purpose;
        # preflight-trap and --preflight turn it on (lab/scenario_preflight.py).
        "preflight": lab_preflight(scenario),
    }
    extra: dict[str, Any] = {}
    if scenario.classifier_threshold is not None:
        extra["classifier"] = th.classifier_spec(scenario.classifier_threshold)
        rollout.update(th.rollout_extras())
    return {
        "apiVersion": "tierguard.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"tierguard.io/lab-scenario": scenario.name},
        },
        "spec": {
            "models": [
                model(CAPABLE, capable_url, CAPABLE_PRICE),
                model(CHEAP, cheap_url, CHEAP_PRICE),
                lab_judge.judge_model(judge_url, secret_name),
            ],
            "routes": [
                {
                    "tier": SIMPLE,
                    "baseline": CAPABLE,
                    "candidate": CHEAP,
                    "fallbacks": [CAPABLE],
                    "latencyBudget": LAB_LATENCY_BUDGET,
                },
                # explicit empty list: the CRD's CEL rule reads r.fallbacks, and the field has
                # no schema default, so a route without it is refused by the API server
                {"tier": COMPLEX, "baseline": CAPABLE, "fallbacks": [], "latencyBudget": "3s"},
            ],
            **extra,
            "rollout": rollout,
            "analysis": analysis,
            "prometheus": {"url": prometheus_url, "timeout": "3s"},
            "router": {
                "replicas": replicas,
                "shadow": {"sampleRate": 1.0, "judge": judge},
                "logLevel": "warning",
            },
        },
    }
