"""The RoutingPolicy the lab applies for a scenario, time-compressed (:func:`lab_policy`).

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

The aggregate-only variant (``--compare-naive``) gates on one product-wide Custom query
(:func:`naive_queries`); pre-flight, slice gates and the classifier canary add their parts
from :mod:`~tierguard.lab.scenario_preflight`, :mod:`~tierguard.lab.scenario_slices` and
:mod:`~tierguard.lab.scenario_threshold`. The world it routes (providers, prices, the
shared upstream model id) is :mod:`tierguard.lab.scenario_world`.
"""

from __future__ import annotations

from typing import Any, Final

from tierguard.api.enums import Signal
from tierguard.lab import judge as lab_judge
from tierguard.lab import scenario_slices as sl
from tierguard.lab import scenario_threshold as th
from tierguard.lab.scenario_preflight import lab_preflight
from tierguard.lab.scenario_world import (
    CAPABLE,
    CAPABLE_PRICE,
    CHEAP,
    CHEAP_PRICE,
    COMPLEX,
    SIMPLE,
    UPSTREAM_MODEL,
    Scenario,
)

#: The RoutingPolicy the lab applies, and where.
POLICY_NAME: Final = "support-lab"
NAMESPACE: Final = "tierguard-lab"

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


def scenario_steps(scenario: Scenario) -> tuple[float, ...]:
    """The rollout steps of ``scenario``'s policy."""
    return scenario.steps or LAB_STEPS


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
