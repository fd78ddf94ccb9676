"""Prometheus query results read as counter series per tier, arm and router process (pure).

A built-in signal's result becomes ``(tier, arm) -> {series: value}`` (:func:`arm_series`),
where a series is ``instance`` or, for counters the routers export per user cluster
(requests, feedback, shadow judgements), ``instance#cluster`` (:func:`series_key`): the
gates sum them for the test and use their spread for the design effect. Latency is read
from the one bucket query (:func:`latency_total`, :func:`latency_bad`), pairwise verdicts
per verdict (:func:`pairwise_verdicts`).

Custom queries must return raw cumulative counts, **one series per router process** (keep
the ``instance`` or ``pod`` label, e.g. ``sum by (instance) (...)``): a sum across replicas
drops when one router restarts and cannot be told from a counter reset, so the whole
history would be counted again. Each series is keyed by its labels and its resets are
handled on its own, like the built-in signals'. A series without such a label, a negative
or fractional value (``rate()``, ``increase()``, a ratio) is refused by
:func:`custom_series`: the gate gets NoData with a message naming the query.

Any NaN or infinite value (``0/0`` in an expression) is refused the same way, naming the
query (:func:`sample_value`): the gate holds as NoData and the ``noData.after`` clock runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.enums import Arm, Signal
from tierguard.operator.design_effect import CLUSTER_SEP
from tierguard.operator.promreader import QueryError

__all__ = [
    "ARMS",
    "PER_PROCESS_LABELS",
    "Series",
    "arm_series",
    "custom_series",
    "labels_text",
    "latency_bad",
    "latency_total",
    "pairwise_verdicts",
    "requests_flowing",
    "sample_value",
    "series_key",
]

ARMS = (Arm.CONTROL.value, Arm.HOLDBACK.value, Arm.CANARY.value)
#: Labels that tell one router process from another in a Custom query's result.
PER_PROCESS_LABELS = frozenset({"instance", "pod"})


Series = dict[tuple[str, str], dict[str, float]]  # (tier, arm) -> {instance: value}


def labels_text(labels: Mapping[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return "{" + inner + "}"


def sample_value(promql: str, item: Mapping[str, Any]) -> float:
    """A sample's value; NaN or ±Inf is a QueryError naming the query."""
    value = float(item["value"][1])
    if not math.isfinite(value):
        raise QueryError(
            f"query `{promql}` returned {value} for {labels_text(item.get('metric', {}))}: "
            "a counter reading must be a finite number (NaN usually comes from 0/0)"
        )
    return value


def arm_series(result: Sequence[Mapping[str, Any]], promql: str) -> Series:
    out: Series = {}
    for item in result:
        labels = item.get("metric", {})
        value = sample_value(promql, item)
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        out.setdefault(key, {})[series_key(labels)] = value
    return out


def series_key(labels: Mapping[str, str]) -> str:
    """``instance`` or ``instance#cluster`` (statistics' per-cluster key format)."""
    instance = labels.get("instance", "")
    cluster = labels.get(m.CLUSTER, "")
    if cluster in ("", m.CLUSTER_NONE):
        return instance
    return f"{instance}{CLUSTER_SEP}{cluster}"


def latency_total(buckets: Sequence[Mapping[str, Any]], promql: str) -> Series:
    """Per series: all requests, the ``le="+Inf"`` bucket (equal to ``_count``)."""
    total: Series = {}
    for item in buckets:
        labels = item.get("metric", {})
        if labels.get("le") != "+Inf":
            continue
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        total.setdefault(key, {})[labels.get("instance", "")] = sample_value(promql, item)
    return total


def latency_bad(
    buckets: Sequence[Mapping[str, Any]], counts: Series, objective: float, promql: str
) -> Series:
    """Per series: requests slower than ``objective`` = count - bucket(le=objective)."""
    under: Series = {}
    found = False
    for item in buckets:
        labels = item.get("metric", {})
        try:
            le = float(labels.get("le", "nan"))
        except ValueError:
            continue
        if not math.isclose(le, objective, rel_tol=1e-9, abs_tol=1e-12):
            continue
        found = True
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        under.setdefault(key, {})[labels.get("instance", "")] = sample_value(promql, item)
    if not found and buckets:
        raise QueryError(
            f"no histogram bucket at the latency objective {objective:g}s: the routers must "
            "run a config that lists it in observability.latencyObjectives"
        )
    bad: Series = {}
    for key, per_instance in counts.items():
        for inst, count in per_instance.items():
            below = under.get(key, {}).get(inst, 0.0)
            bad.setdefault(key, {})[inst] = max(0.0, count - below)
    return bad


def custom_series(promql: str, result: Sequence[Mapping[str, Any]], which: str) -> dict[str, float]:
    """A Custom query's result as ``{series labels: count}``, or a QueryError that says
    why the readings are not per-process cumulative counts (see the module doc)."""
    out: dict[str, float] = {}
    for item in result:
        labels = {k: str(v) for k, v in item.get("metric", {}).items() if k != "__name__"}
        value = sample_value(promql, item)
        where = labels_text(labels)
        if value < 0 or value != math.floor(value):
            raise QueryError(
                f"query.{which} `{promql}` returned {value:g} for {where}: not a cumulative "
                "count of outcomes; return the raw counters (no rate(), increase(), "
                "averages or ratios)"
            )
        if not labels.keys() & PER_PROCESS_LABELS:
            raise QueryError(
                f"query.{which} `{promql}` returned a series without an instance label "
                f"({where}): a sum across router replicas drops when one restarts and "
                "cannot be told from a counter reset; keep one series per router, e.g. "
                "sum by (instance) (...)"
            )
        out[where] = value
    return out


def pairwise_verdicts(
    result: Sequence[Mapping[str, Any]], tier: str, promql: str
) -> dict[str, dict[str, float]]:
    """``verdict -> {series: value}`` of one tier from :func:`pairwise_query`'s result."""
    out: dict[str, dict[str, float]] = {}
    for item in result:
        labels = item.get("metric", {})
        if labels.get(m.TIER) != tier:
            continue
        verdict = labels.get(m.VERDICT, "")
        out.setdefault(verdict, {})[series_key(labels)] = sample_value(promql, item)
    return out


def requests_flowing(builtin: Any, tier: str) -> bool:
    """Whether the routers export request counters for ``tier`` (any arm): then a signal
    without events is quiet, not missing. The query is the ErrorRate total, so it is
    read at most once per look (or per shared round)."""
    requests = arm_series(builtin(Signal.ERROR_RATE, 1), "the built-in ErrorRate query (total)")
    return any(key[0] == tier and values for key, values in requests.items())
