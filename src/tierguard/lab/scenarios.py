"""The lab's scenarios: pure data that says what the simulated world looks like.

A scenario fixes everything the lab varies between runs: how good each fake provider is
on each seed-003 category, how fast and how reliable it is, which outages happen when,
how much traffic the simulated users send, and what the rollout is expected to end in.
Nothing here starts a process or opens a socket, so every scenario is unit-tested and the
supervisor only executes what is written here.

Quality model. A provider answers a query of category *c* well with probability
``quality[c]``. The simulated user of that request is satisfied exactly when the answer was
good; a rating user gives thumbs-down when not satisfied. The numbers (here and in
:mod:`~tierguard.lab.scenario_world`) are chosen so that the lab reproduces seed 003: the
``pareto-trap`` cheap model is as good as the capable one everywhere except
``billing_status``, a category the classifier rightly calls simple, where it answers 50
points worse. That costs the simple tier's canary arm 8 to 11 points of satisfaction
(depending on how much of billing_status the classifier keeps in the simple tier) but moves
the whole product's satisfaction by at most 0.14 x 50 = 7 points even at 100 % -- and by
0.35 points at the 5 % stage, which is what an aggregate dashboard or an aggregate-only gate
sees.

How the gate sees it. The lab's policy gates the simple tier's canary on
``ShadowDisagreement`` judged by a *pairwise* LLM judge (a third fake provider in judge
mode, :mod:`tierguard.lab.judge`): every canary answer is shadowed, the judge compares it
with the baseline's answer to the same request in both orders, and the operator's paired
sequential test holds the net share of worse canary answers to ``allowedDrop`` (3 %),
failing once it is confidently above half of that. In ``pareto-trap`` about half of the
billing_status pairs are "canary worse", 8 to 11 % of the simple tier's pairs; in
``healthy`` both models fail the same queries, so every pair is a tie.

This module is the catalogue (:data:`SCENARIOS`, :func:`get`, the ``--compare-naive``
variant) and the expected figures of a profile; the world's parts and types are in
:mod:`tierguard.lab.scenario_world`, the policy the lab applies in
:mod:`tierguard.lab.lab_policy`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from tierguard.api.enums import Phase, Signal
from tierguard.classifier.dataset import CATEGORIES, CATEGORY_WEIGHTS, COMPLEX_CATEGORIES
from tierguard.lab import scenario_slices as sl
from tierguard.lab import scenario_threshold as th
from tierguard.lab.scenario_preflight import preflight_variant as preflight_variant
from tierguard.lab.scenario_world import (
    CAPABLE_SIMPLE_QUALITY,
    CHEAP,
    SIMPLE,
    Event,
    Expectation,
    ProviderProfile,
    Scenario,
    ScenarioError,
    TrafficSpec,
    capable_profile,
    cheap_profile,
)

#: ``healthy``'s time scale: the share of each complex category's queries kept in the
#: traffic, and its bake time.
HEALTHY_COMPLEX_KEEP: Final = 0.3
HEALTHY_BAKE_TIME: Final = "10s"
#: The category the cheap model fails in ``pareto-trap`` and how badly.
TRAP_CATEGORY: Final = "billing_status"
TRAP_QUALITY: Final = 0.45


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
