"""A classifier change in the lab (issue 17): the ``threshold-trap`` scenario's parts.
Pure data and pure functions, like :mod:`tierguard.lab.scenarios` (which registers the scenario;
:mod:`tierguard.lab.lab_policy` builds the policy).

The world: the cheap model is as good as the capable one on simple queries and serves the
simple tier (its model canary is at :data:`THRESHOLD_TRAP_STEPS`' first step, half of the
sessions), but it is no good at complex queries: it answers them well only
:data:`THRESHOLD_TRAP_COMPLEX_QUALITY` of the time, hard billing queries
(``billing_anomaly``) only :data:`THRESHOLD_TRAP_ANOMALY_QUALITY` (which is why the
classifier sends complex queries to the capable model). The policy names the bundled
classifier with an explicit simple-tier threshold (:data:`STABLE_THRESHOLD`, about the
model's own 0.63). A few seconds into the model canary the lab edits that threshold down
to :data:`TRAP_THRESHOLD` (a scenario event): "more traffic on the cheap model". On the
bundled model that moves about 30 % of every complex category into the simple tier,
``billing_anomaly`` among them, and nothing else (the simple categories are already
simple).

What the operator does with it: the edit changes the classifier's content, so it is a
new revision that starts with a **decision shadow** (both classifiers score every
request, the stable one decides; the routers count the transition matrix,
``status.classifierShadow``), then a **classifier canary** where the new classifier
decides for the first step's share of sessions. Requests it moves *down* (complex →
simple) are judged on thumbs-down against the same cell's sessions under the stable
classifier. The model split stays what it was during both, so those moved-down requests
reach the cheap model in the simple tier's canary arm and get bad ratings: the cell
complex→simple fails at the classifier canary's first step and the rollout is rolled
back (the stable classifier decides for everyone again).

Time compression: a short shadow (:data:`SHADOW_MIN_REQUESTS` requests, 10 s), lone
questions (no conversations, so the cell counts are not blurred by session tiering) and a
high rating rate (:data:`THRESHOLD_TRAP_RATING_RATE`: in production 10-20 % of answers are
rated; the lab needs the thumbs of about a hundred moved-down requests per arm in a
minute or two).
"""

from __future__ import annotations

from typing import Any, Final

from tierguard.api.enums import Phase
from tierguard.classifier.dataset import COMPLEX_CATEGORIES
from tierguard.lab.scenario_world import (
    Event,
    Expectation,
    Scenario,
    TrafficSpec,
    capable_profile,
    cheap_profile,
)

#: The hard billing category the cheap model fails, and how badly.
ANOMALY_CATEGORY: Final = "billing_anomaly"
THRESHOLD_TRAP_ANOMALY_QUALITY: Final = 0.2
#: The cheap model on the other complex categories in this world.
THRESHOLD_TRAP_COMPLEX_QUALITY: Final = 0.4
#: The simple tier's threshold before and after the edit (the bundled model's own is 0.63).
STABLE_THRESHOLD: Final = 0.6
TRAP_THRESHOLD: Final = 0.02
#: The model rollout's steps: the cheap model serves half of the simple tier's sessions
#: when the threshold is edited, and the classifier canary's only step is 50 % of sessions.
THRESHOLD_TRAP_STEPS: Final = (50.0, 100.0)
#: Seconds into the model canary's first step when the threshold is edited.
EDIT_AFTER_S: Final = 8.0
THRESHOLD_TRAP_RATING_RATE: Final = 0.6
#: The decision shadow: this many requests counted by both, at least SHADOW_MIN_DURATION.
SHADOW_MIN_REQUESTS: Final = 300
SHADOW_MIN_DURATION: Final = "10s"
SHADOW_MAX_DURATION: Final = "90s"
#: The classifier canary's allowed rise of the thumbs-down share in a moved-down cell.
CELL_ALLOWED_DROP: Final = 0.05
#: The cell that must fail: the stable classifier's tier → the new classifier's.
TRAP_CELL: Final = "complex→simple"


def classifier_spec(threshold: float) -> dict[str, Any]:
    """``spec.classifier``: the bundled model with an explicit simple-tier threshold."""
    return {
        "tiers": [{"name": "simple", "threshold": threshold}, {"name": "complex"}],
        "tiering": "Request",
    }


def threshold_patch(threshold: float) -> dict[str, Any]:
    """The merge patch of the RoutingPolicy that edits the simple tier's threshold (a
    merge patch replaces the whole tier list)."""
    return {"spec": {"classifier": {"tiers": classifier_spec(threshold)["tiers"]}}}


def rollout_extras() -> dict[str, Any]:
    """``spec.rollout.classifierShadow`` and ``classifierCanary`` of the scenario."""
    return {
        "classifierShadow": {
            "minRequests": SHADOW_MIN_REQUESTS,
            "minDuration": SHADOW_MIN_DURATION,
            "maxDuration": SHADOW_MAX_DURATION,
        },
        "classifierCanary": {"enabled": True, "allowedDrop": CELL_ALLOWED_DROP},
    }


def threshold_trap() -> Scenario:
    """The ``threshold-trap`` scenario (registered in
    :data:`tierguard.lab.scenarios.SCENARIOS`)."""
    return Scenario(
        name="threshold-trap",
        title="Issue 17: a threshold edit moves hard billing queries to the cheap model",
        story=(
            "The cheap model serves half of the simple tier's sessions and is as good as the "
            "capable one on simple queries, but answers complex queries well only "
            f"{THRESHOLD_TRAP_COMPLEX_QUALITY:.0%} of the time, hard billing queries "
            f"({ANOMALY_CATEGORY}) {THRESHOLD_TRAP_ANOMALY_QUALITY:.0%}. A few seconds into "
            "its canary someone lowers the simple tier's threshold from "
            f"{STABLE_THRESHOLD:g} to {TRAP_THRESHOLD:g}: a classifier change. The operator "
            "rolls it out like a model change: a decision shadow counts the transition "
            "matrix (complex queries, billing anomalies among them, moving to simple), then "
            "the new classifier decides for half of the sessions, and the moved-down cell "
            f"{TRAP_CELL} is judged on thumbs-down against the same cell under the stable "
            "classifier. It fails at the classifier canary's first step and the stable "
            "classifier decides for everyone again."
        ),
        cheap=cheap_profile(
            **{
                **dict.fromkeys(COMPLEX_CATEGORIES, THRESHOLD_TRAP_COMPLEX_QUALITY),
                ANOMALY_CATEGORY: THRESHOLD_TRAP_ANOMALY_QUALITY,
            }
        ),
        capable=capable_profile(),
        expect=Expectation(Phase.ROLLED_BACK, max_step=0, failed_cell=TRAP_CELL),
        events=(
            Event(
                "classifier_threshold",
                at_step=0,
                after_s=EDIT_AFTER_S,
                label=(
                    f"classifier edited: simple tier's threshold {STABLE_THRESHOLD:g} → "
                    f"{TRAP_THRESHOLD:g}"
                ),
                threshold=TRAP_THRESHOLD,
            ),
        ),
        traffic=TrafficSpec(conversations=False, rating_rate=THRESHOLD_TRAP_RATING_RATE),
        deadline_s=300.0,
        steps=THRESHOLD_TRAP_STEPS,
        classifier_threshold=STABLE_THRESHOLD,
    )
