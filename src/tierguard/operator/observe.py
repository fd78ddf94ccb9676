"""Prometheus I/O: raw counter readings per tier × arm × router instance for every gate.

:func:`observe` reads every gate of a policy in one look (each query at most once: a
per-look cache, or batched queries shared by all policies,
:mod:`tierguard.operator.shared_queries`); :func:`read_preflight_spend` and
:func:`read_preflight_traffic` read what pre-flight needs. The queries are built in
:mod:`tierguard.operator.promql`, their results read in :mod:`tierguard.operator.promseries`,
sent by :class:`~tierguard.operator.promreader.PrometheusReader`; slice gates are read by
:mod:`tierguard.operator.observeslices`.

Readings are raw cumulative counters, summed per ``instance`` (one series per router
process) so that the statistics can detect a counter reset of one router without it
being hidden by the others' growth; the increase over an interval is computed by the
gates, never by ``increase()``, which extrapolates to window edges and returns
fractional counts.

Failures never raise: an unreachable Prometheus gives ``Observations(error=...)`` and a
failed query gives that gate a ``GateReading(error=...)``. Both become NoData verdicts,
which hold a stage and never advance it. Every reading also says whether the tier's
request counters exist (``requests_flowing``): a signal with no events while requests
flow (nobody rated yet) is Inconclusive, not NoData.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from tierguard.api import metrics as m
from tierguard.api.enums import Signal
from tierguard.operator.gatetypes import GateReading, GateSpec, Observations
from tierguard.operator.observeslices import read_slice_gate
from tierguard.operator.promql import (
    pairwise_query,
    preflight_spend_query,
    preflight_traffic_query,
    signal_queries,
    substitute,
)
from tierguard.operator.promreader import PrometheusReader, QueryError, UnreachableError
from tierguard.operator.promseries import (
    ARMS,
    arm_series,
    custom_series,
    latency_bad,
    latency_total,
    pairwise_verdicts,
    requests_flowing,
    sample_value,
)
from tierguard.operator.statistics import ArmReading

#: Callers build a :class:`~tierguard.operator.promreader.PrometheusReader` and pass it in.
__all__ = [
    "SharedResults",
    "observe",
    "read_preflight_spend",
    "read_preflight_traffic",
]

log = logging.getLogger("tierguard.operator.observe")


def read_preflight_traffic(
    reader: PrometheusReader, policy: str, namespace: tuple[str, str] | None = None
) -> dict[str, float] | None:
    """``tier -> requests a minute``; None when the query failed."""
    promql = preflight_traffic_query(policy, namespace)
    try:
        return {
            item.get("metric", {}).get(m.TIER, ""): sample_value(promql, item)
            for item in reader.query(promql)
        }
    except (UnreachableError, QueryError) as exc:
        log.warning("pre-flight traffic: %s", exc)
        return None


def read_preflight_spend(
    reader: PrometheusReader, policy: str, namespace: tuple[str, str] | None = None
) -> dict[str, dict[str, float]] | None:
    """``tier -> {instance: cumulative USD}``; None when the query failed (the spend so
    far is kept as it was)."""
    promql = preflight_spend_query(policy, namespace)
    try:
        result = reader.query(promql)
        out: dict[str, dict[str, float]] = {}
        for item in result:
            labels = item.get("metric", {})
            out.setdefault(labels.get(m.TIER, ""), {})[labels.get("instance", "")] = sample_value(
                promql, item
            )
        return out
    except (UnreachableError, QueryError) as exc:
        log.warning("pre-flight spend: %s", exc)
        return None


def observe(
    reader: PrometheusReader,
    policy: str,
    gates: Sequence[GateSpec],
    now: datetime,
    *,
    namespace: tuple[str, str] | None = None,
    shared: SharedResults | None = None,
) -> Observations:
    """Read every gate's counters. Never raises for Prometheus trouble.

    ``shared``: read the built-in signals from batched queries shared by all policies
    (one per signal and evaluation round) instead of this policy's own queries; the
    readings are the same (Custom signals always run the policy's own PromQL).
    """
    cache: dict[str, list[dict[str, Any]]] = {}

    def run(promql: str) -> list[dict[str, Any]]:
        if promql not in cache:
            cache[promql] = reader.query(promql)
        return cache[promql]

    def builtin(signal: Signal, which: int) -> list[dict[str, Any]]:
        """``which`` 0: the bad-outcome query, 1: the total."""
        if shared is not None:
            return shared.results(reader, signal, which, policy, namespace)
        return run(signal_queries(signal, policy, namespace)[which])

    readings: dict[str, GateReading] = {}
    try:
        for g in gates:
            try:
                if g.pairwise:
                    q = pairwise_query(policy, namespace)
                    readings[g.key] = GateReading(
                        verdicts=pairwise_verdicts(run(q), g.tier, q),
                        requests_flowing=requests_flowing(builtin, g.tier),
                    )
                    continue
                if g.slice_name is not None:
                    readings[g.key] = read_slice_gate(run, builtin, g, policy, namespace)
                    continue
                readings[g.key] = _read_gate(run, builtin, g)
            except UnreachableError:
                raise
            except QueryError as exc:
                readings[g.key] = GateReading(error=str(exc))
    except UnreachableError as exc:
        log.warning("%s", exc)
        return Observations(at=now, error=str(exc))
    return Observations(at=now, gates=readings)


class SharedResults(Protocol):
    """Batched built-in signal queries (see :mod:`tierguard.operator.shared_queries`)."""

    def results(
        self,
        reader: PrometheusReader,
        signal: Signal,
        which: int,
        policy: str,
        namespace: tuple[str, str] | None,
    ) -> list[dict[str, Any]]: ...


def _read_custom(run: Any, g: GateSpec) -> GateReading:
    if g.query is None:
        raise QueryError("signal Custom without query")
    arms: dict[str, ArmReading] = {}
    for arm in ARMS:
        bad_q = substitute(g.query.bad, g.tier, arm)
        total_q = substitute(g.query.total, g.tier, arm)
        total = custom_series(total_q, run(total_q), "total")
        bad = custom_series(bad_q, run(bad_q), "bad")
        if total:
            arms[arm] = ArmReading(bad=bad, total=total)
    return GateReading(arms=arms)


def _read_gate(run: Any, builtin: Any, g: GateSpec) -> GateReading:
    if g.signal == Signal.CUSTOM:
        custom = _read_custom(run, g)
        return GateReading(arms=custom.arms, requests_flowing=requests_flowing(builtin, g.tier))
    name = f"the built-in {g.signal.value} query"
    flowing = requests_flowing(builtin, g.tier)
    if g.signal == Signal.LATENCY:
        if g.latency_objective is None:
            raise QueryError("signal Latency without latencyObjective")
        # total and bad from the one bucket query (le="+Inf" is the count): read from two
        # queries, count and bucket come from different moments, their difference dips
        # whenever the second read is the older one, and a dip reads as a counter reset
        # (statistics.counter_delta counts the whole value again)
        buckets = builtin(g.signal, 0)
        total = latency_total(buckets, f"{name} (bad)")
        bad = latency_bad(buckets, total, g.latency_objective, f"{name} (bad)")
    else:
        total = arm_series(builtin(g.signal, 1), f"{name} (total)")
        bad = arm_series(builtin(g.signal, 0), f"{name} (bad)")
    arms = {}
    for arm in ARMS:
        t = total.get((g.tier, arm))
        if not t:
            continue
        arms[arm] = ArmReading(bad=bad.get((g.tier, arm), {}), total=t)
    return GateReading(arms=arms, requests_flowing=flowing)
