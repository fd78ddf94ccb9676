"""Prometheus readings of slice gates (analysis.slices), beside :mod:`observe`.

A slice gate reads the ``slice_*_total`` counters of its signal with
``slice="<name>"``, grouped by ``slice_value`` too, so one query per (signal, slice)
serves every value of the slice (the caller's per-look cache runs it once). Slice
queries always run as the policy's own queries, never batched across policies:

* ThumbsDown: ``slice_feedback_total{rating="down"}`` / ``slice_feedback_total``
* ShadowDisagreement: ``slice_shadow_judgements_total{verdict="disagree"}`` /
  ``slice_shadow_judgements_total{verdict=~"agree|disagree"}``
* ErrorRate: ``slice_requests_total{outcome=~"error|escalated"}`` /
  ``slice_requests_total``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.enums import Signal
from tierguard.operator.gatetypes import GateReading, GateSpec
from tierguard.operator.promql import GROUP, selector
from tierguard.operator.promseries import ARMS, arm_series, requests_flowing
from tierguard.operator.statistics import ArmReading

Run = Callable[[str], list[dict[str, Any]]]


def slice_signal_queries(
    signal: Signal, policy: str, slice_name: str, namespace: tuple[str, str] | None = None
) -> tuple[str, str]:
    """(bad, total) PromQL of a sliced signal for every value of one slice."""
    group = f"{GROUP}, {m.SLICE_VALUE}, {m.CLUSTER}"

    def q(metric: str, extra: Mapping[str, str]) -> str:
        sel = selector(policy, {m.SLICE: slice_name, **extra}, namespace)
        return f"sum by ({group}) ({metric}{sel})"

    if signal == Signal.THUMBS_DOWN:
        return (
            q(m.SLICE_FEEDBACK.name, {m.RATING: m.RATING_DOWN}),
            q(m.SLICE_FEEDBACK.name, {}),
        )
    if signal == Signal.SHADOW_DISAGREEMENT:
        judged = {m.VERDICT: f"~{m.VERDICT_AGREE}|{m.VERDICT_DISAGREE}"}
        return (
            q(m.SLICE_SHADOW_JUDGEMENTS.name, {m.VERDICT: m.VERDICT_DISAGREE}),
            q(m.SLICE_SHADOW_JUDGEMENTS.name, judged),
        )
    if signal == Signal.ERROR_RATE:
        return (
            q(m.SLICE_REQUESTS.name, {m.OUTCOME: f"~{m.OUTCOME_ERROR}|{m.OUTCOME_ESCALATED}"}),
            q(m.SLICE_REQUESTS.name, {}),
        )
    raise ValueError(f"signal {signal} is not judged per slice")


def read_slice_gate(
    run: Run,
    builtin: Any,
    g: GateSpec,
    policy: str,
    namespace: tuple[str, str] | None,
) -> GateReading:
    """A slice gate's readings: the slice counters of its value only."""
    assert g.slice_name is not None
    bad_q, total_q = slice_signal_queries(g.signal, policy, g.slice_name, namespace)
    name = f"the {g.signal.value} query of slice {g.slice_name}"

    def only_value(result: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [i for i in result if i.get("metric", {}).get(m.SLICE_VALUE) == g.slice_value]

    total = arm_series(only_value(run(total_q)), f"{name} (total)")
    bad = arm_series(only_value(run(bad_q)), f"{name} (bad)")
    arms = {}
    for arm in ARMS:
        t = total.get((g.tier, arm))
        if t:
            arms[arm] = ArmReading(bad=bad.get((g.tier, arm), {}), total=t)
    return GateReading(arms=arms, requests_flowing=requests_flowing(builtin, g.tier))
