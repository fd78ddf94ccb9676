"""Pre-flight in the lab (issue 16): the ``preflight-trap`` scenario's parts and the
``--preflight`` variant of any scenario. Pure data and pure functions, like
:mod:`tierguard.lab.scenarios` (which registers the scenario;
:mod:`tierguard.lab.lab_policy` builds the policy).

The stage is compressed like the weighted stages are (which shadow every canary answer):
every stateless request of the simple tier is mirrored (each a cheap-model call and two
judge calls; a few judged pairs a second on a busy 2-core machine, a bounded queue sheds
the rest), the gate may pass after 150 judged pairs, and a 3-minute cap pauses a
pre-flight that cannot decide. On the operator's own state machine at 3 pairs a second
the trap fails after about 180 pairs (a minute) and a healthy candidate passes after
about 250 (tests/unit/lab/test_scenario_preflight.py). At seed 003's real
traffic the same decision takes hours (docs/statistics.md, *Pre-flight*).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from tierguard.api.enums import Phase, Signal
from tierguard.lab.scenario_world import Scenario, ScenarioError

LAB_PREFLIGHT_SAMPLE_RATE: Final = 1.0
LAB_PREFLIGHT_MIN_PAIRS: Final = 150
LAB_PREFLIGHT_MAX_DURATION: Final = "3m"
#: the cap in seconds: a --preflight run's deadline grows by it
LAB_PREFLIGHT_MAX_S: Final = 180.0
LAB_PREFLIGHT_MAX_SPEND_USD: Final = 5.0


def lab_preflight(scenario: Scenario) -> dict[str, Any]:
    """``spec.rollout.preflight`` of the lab's policy for ``scenario`` (pure)."""
    if not scenario.preflight or scenario.naive:
        return {"enabled": False}
    return {
        "enabled": True,
        "sampleRate": LAB_PREFLIGHT_SAMPLE_RATE,
        "minPairs": LAB_PREFLIGHT_MIN_PAIRS,
        "maxDuration": LAB_PREFLIGHT_MAX_DURATION,
        "maxSpendUSD": LAB_PREFLIGHT_MAX_SPEND_USD,
    }


def preflight_variant(scenario: Scenario) -> Scenario:
    """The same world with pre-flight before the first weighted step (``--preflight``).

    A candidate the pairwise gate would fail (expected RolledBack on ShadowDisagreement)
    is expected to fail at pre-flight, before any user is served by it; one expected to
    be promoted must pass pre-flight first; other expectations are unchanged."""
    if scenario.preflight:
        return scenario
    if scenario.slice_gates:
        raise ScenarioError(
            f"{scenario.name} judges with the Agreement judge (slice gates); pre-flight "
            "needs the pairwise judge: run it without --preflight"
        )
    expect = scenario.expect
    if expect.phase == Phase.ROLLED_BACK and expect.failed_signal == Signal.SHADOW_DISAGREEMENT:
        expect = replace(expect, preflight="Failed", max_step=0)
    elif expect.phase == Phase.PROMOTED:
        expect = replace(expect, preflight="Passed")
    return replace(
        scenario,
        preflight=True,
        expect=expect,
        deadline_s=scenario.deadline_s + LAB_PREFLIGHT_MAX_S,
    )
