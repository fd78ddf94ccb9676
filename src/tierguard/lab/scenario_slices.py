"""Slice gates in the lab (issue 17): the ``slice-trap`` scenario's parts. Pure data and
pure functions, like :mod:`tierguard.lab.scenarios` (which registers the scenario;
:mod:`tierguard.lab.lab_policy` builds the policy).

The world: on simple queries both models rarely miss (99 %), except the cheap one on
``opening_hours``, where it answers well 15 points less often (84 %). The lab's traffic
is thinned so that ``opening_hours`` is about 10 % of the simple tier
(:data:`SLICE_TRAP_THINNING`), so the tier loses 1.5 points: issue 17's loss that hides
below the tier.

How it is judged: ``ShadowDisagreement`` with the *Agreement* LLM judge (the pairwise
judge's counters carry no slice label, so its gate is tier-level only), on an Absolute
objective: the share of shadowed canary answers the judge finds in disagreement with the
baseline's must stay within :data:`SLICE_TRAP_DISAGREEMENT_CEILING` (6 %). With the fake
judge two answers disagree when either is bad, so a healthy canary disagrees on about
1 % of simple requests (the capable model's own misses), the trapped tier on about
2.5 % (within the ceiling: the tier gate passes), the trapped category on about 16 %
(above it: its slice gate fails). The slice is ``topic`` with ``source: Classifier``:
its value is the category label of the classifier's category head (the shipped model
has one), so no client sends anything new.

Time compression: at its share of the family budget (alpha 0.0031, 8 slice gates) the
trapped value fails after about 140 judged canary answers and a healthy value passes
after about 270, so this scenario's first step is :data:`SLICE_TRAP_STEPS`' 40 % (at
the lab's 80 requests/s about 2 judged answers of the slice a second) and the slice sets
``minSamples``: a stage advances only once every declared value has passed, which the
trapped one never does, so the rollout cannot outrun the slice gate (one to two minutes
of rollout; a unit test drives the operator's state machine at these rates). At a
production canary share the same decision takes hours.
"""

from __future__ import annotations

from typing import Any, Final

from tierguard.api.enums import Phase, Signal
from tierguard.classifier.dataset import SIMPLE_CATEGORIES
from tierguard.lab import judge as lab_judge
from tierguard.lab.scenario_world import (
    SIMPLE,
    Expectation,
    Scenario,
    TrafficSpec,
    capable_profile,
    cheap_profile,
)

#: The category the cheap model fails in ``slice-trap``, and how badly (15 points).
SLICE_TRAP_CATEGORY: Final = "opening_hours"
SLICE_TRAP_LOSS: Final = 0.15
#: The slice the lab's policy declares (values: categories of the classifier's head).
SLICE_NAME: Final = "topic"
SLICE_VALUES: Final = ("billing_status", "opening_hours", "order_tracking")
#: Every declared value must reach this many judged canary answers per step (and pass)
#: before a stage may advance.
SLICE_MIN_SAMPLES: Final = 60
#: The Absolute ceiling on the canary's disagreement share (tier and slices).
SLICE_TRAP_DISAGREEMENT_CEILING: Final = 0.06
#: Both models' quality on simple categories in this world (the trap category aside).
SLICE_TRAP_SIMPLE_QUALITY: Final = 0.99
SLICE_TRAP_STEPS: Final = (40.0, 70.0, 100.0)
#: Keep this share of the query pool's trap-category queries, so the category is about
#: 10 % of the classifier's simple tier (12 % in the generator's mix).
SLICE_TRAP_THINNING: Final = 0.82


def slice_name_value(value: str = SLICE_TRAP_CATEGORY) -> str:
    """``topic=opening_hours``: how status, events and the report name the slice."""
    return f"{SLICE_NAME}={value}"


def slice_specs() -> list[dict[str, Any]]:
    """``spec.analysis.slices`` of the slice-trap policy."""
    return [
        {
            "name": SLICE_NAME,
            "source": "Classifier",
            "values": list(SLICE_VALUES),
            "minSamples": SLICE_MIN_SAMPLES,
        }
    ]


def agreement_judge() -> dict[str, Any]:
    """``spec.router.shadow.judge`` for the lab's judge in agreement mode."""
    return {"type": "LLM", "mode": "Agreement", "model": lab_judge.JUDGE}


def disagreement_slo(tier: str) -> dict[str, Any]:
    """The Absolute ShadowDisagreement SLO the slice gates inherit."""
    return {
        "tier": tier,
        "signal": Signal.SHADOW_DISAGREEMENT.value,
        "objective": "Absolute",
        "threshold": SLICE_TRAP_DISAGREEMENT_CEILING,
    }


def slice_trap() -> Scenario:
    """The ``slice-trap`` scenario (registered in :data:`tierguard.lab.scenarios.SCENARIOS`)."""
    cat, loss = SLICE_TRAP_CATEGORY, SLICE_TRAP_LOSS
    simple = dict.fromkeys(SIMPLE_CATEGORIES, SLICE_TRAP_SIMPLE_QUALITY)
    capable = capable_profile()
    return Scenario(
        name="slice-trap",
        title="Issue 17: a loss that hides below the tier, caught by a slice gate",
        story=(
            f"The cheap model is as good as the capable one except on {cat}, about 10 % of "
            f"the simple tier, where it answers well {loss * 100:.0f} points less often. "
            f"The simple tier moves by about {loss * 10:.1f} points, well within its "
            "ceiling: the tier's gate passes. The policy declares a slice `topic` whose value "
            "is the classifier's category label; the slice gate "
            f"`{slice_name_value()}` fails and the rollout is rolled back, naming the "
            "slice."
        ),
        cheap=cheap_profile(**{**simple, cat: SLICE_TRAP_SIMPLE_QUALITY - loss}),
        capable=capable.with_(quality={**capable.quality, **simple}),
        expect=Expectation(
            Phase.ROLLED_BACK,
            failed_tier=SIMPLE,
            failed_signal=Signal.SHADOW_DISAGREEMENT,
            max_step=1,
            failed_slice=slice_name_value(),
        ),
        traffic=TrafficSpec(conversations=False, category_keep={cat: SLICE_TRAP_THINNING}),
        deadline_s=420.0,
        steps=SLICE_TRAP_STEPS,
        slice_gates=True,
    )
