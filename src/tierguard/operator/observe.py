"""Prometheus I/O: raw counter readings per tier × arm × router instance for every gate.

PromQL is built from the metric names in :mod:`tierguard.api.metrics` only. Readings are
raw cumulative counters, summed per ``instance`` (one series per router process) so that
the statistics can detect a counter reset of one router without it being hidden by the
others' growth; the increase over an interval is computed by the gates, never by
``increase()``, which extrapolates to window edges and returns fractional counts.

Failures never raise: an unreachable Prometheus gives ``Observations(error=...)`` and a
failed query gives that gate a ``GateReading(error=...)``. Both become NoData verdicts,
which hold a stage and never advance it. Every reading also says whether the tier's
request counters exist (``requests_flowing``): a signal with no events while requests
flow (nobody rated yet) is Inconclusive, not NoData.

Signals (bad / total, per arm):

* ThumbsDown: ``feedback_total{rating="down"}`` / ``feedback_total``
* ShadowDisagreement: ``shadow_judgements_total{verdict="disagree"}`` /
  ``shadow_judgements_total{verdict=~"agree|disagree"}`` (judge errors are not quality)
  -- with judge mode Pairwise instead every verdict of
  ``shadow_pairwise_total{arm=~"canary|mirror"}`` (worse, better, tie, inconsistent,
  error; ``mirror``: pre-flight) per series, for the paired gate
  (operator/pairedgate.py); always the policy's own query
Counters with a ``cluster`` label (requests, feedback, shadow judgements) are read per
user cluster as series ``instance#cluster``; the gates sum them for the test and use
their spread for the design effect.

* ErrorRate: ``requests_total{outcome=~"error|escalated"}`` / ``requests_total``
* Latency: ``bucket{le="+Inf"} - bucket{le=objective}`` / ``bucket{le="+Inf"}`` of
  ``request_duration_seconds`` (the router adds every objective as a bucket), all from the
  one bucket query so both counts are from the same scrape
* Custom: the policy's two PromQL expressions with ``$tier`` and ``$arm`` substituted.
  Each must return raw cumulative counts, **one series per router process** (keep the
  ``instance`` or ``pod`` label, e.g. ``sum by (instance) (...)``): a sum across replicas
  drops when one router restarts and cannot be told from a counter reset, so the whole
  history would be counted again. Each series is keyed by its labels and its resets are
  handled on its own, like the built-in signals'. A series without such a label, a
  negative or fractional value (``rate()``, ``increase()``, a ratio) is refused: the gate
  gets NoData with a message naming the query.

Slice gates (analysis.slices) read the ``slice_*_total`` counters: see
:mod:`tierguard.operator.observeslices`.

Any NaN or infinite value (``0/0`` in an expression) is refused the same way, naming the
query: the gate holds as NoData and the ``noData.after`` clock runs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from tierguard.api import metrics as m
from tierguard.api.enums import Arm, Signal
from tierguard.operator.design_effect import CLUSTER_SEP
from tierguard.operator.gates import GateReading, GateSpec, Observations
from tierguard.operator.statistics import ArmReading

log = logging.getLogger("tierguard.operator.observe")

ARMS = (Arm.CONTROL.value, Arm.HOLDBACK.value, Arm.CANARY.value)
GROUP = f"{m.TIER}, {m.ARM}, instance"
#: Counters the routers export per user cluster are read per cluster too: the gates
#: estimate the per-user correlation from their spread (operator/design_effect.py).
GROUP_CLUSTERED = f"{GROUP}, {m.CLUSTER}"
#: Labels that tell one router process from another in a Custom query's result.
PER_PROCESS_LABELS = frozenset({"instance", "pod"})


class QueryError(RuntimeError):
    """One PromQL query failed (bad response, timeout)."""


class UnreachableError(QueryError):
    """Prometheus could not be reached at all."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def selector(
    policy: str | None,
    extra: Mapping[str, str] | None = None,
    namespace: tuple[str, str] | None = None,
) -> str:
    """``{policy="x", ...}``; ``extra`` values starting with ``~`` are regex matches.
    ``policy`` None: every policy's series (``policy!=""``), for a batched query."""
    parts = [f'{m.POLICY}="{_escape(policy)}"' if policy is not None else f'{m.POLICY}!=""']
    if namespace is not None and policy is not None:
        parts.append(f'{namespace[0]}="{_escape(namespace[1])}"')
    for k, v in (extra or {}).items():
        parts.append(f'{k}=~"{_escape(v[1:])}"' if v.startswith("~") else f'{k}="{_escape(v)}"')
    return "{" + ", ".join(parts) + "}"


@dataclass(frozen=True)
class CounterQuery:
    """A PromQL query returning cumulative counters by (tier, arm, instance[, le])."""

    promql: str


def signal_queries(
    signal: Signal,
    policy: str | None,
    namespace: tuple[str, str] | None = None,
    *,
    namespace_label: str | None = None,
) -> tuple[str, str]:
    """(bad, total) PromQL for a built-in signal (Latency is special-cased).

    ``policy`` None builds the *batched* form of the same queries: every policy's series,
    grouped additionally by ``policy`` (and ``namespace_label``, when the policies'
    namespace is matched on a label), so that one query serves all policies and the slice
    of one policy is exactly what its own query returns (see
    :mod:`tierguard.operator.shared_queries`).
    """
    group = GROUP
    if policy is None:
        group = f"{GROUP}, {m.POLICY}" + (f", {namespace_label}" if namespace_label else "")

    def q(metric: str, extra: Mapping[str, str] | None = None) -> str:
        return f"sum by ({group}, {m.CLUSTER}) ({metric}{selector(policy, extra, namespace)})"

    if signal == Signal.THUMBS_DOWN:
        return q(m.FEEDBACK.name, {m.RATING: m.RATING_DOWN}), q(m.FEEDBACK.name)
    if signal == Signal.SHADOW_DISAGREEMENT:
        return (
            q(m.SHADOW_JUDGEMENTS.name, {m.VERDICT: m.VERDICT_DISAGREE}),
            q(m.SHADOW_JUDGEMENTS.name, {m.VERDICT: f"~{m.VERDICT_AGREE}|{m.VERDICT_DISAGREE}"}),
        )
    if signal == Signal.ERROR_RATE:
        return (
            q(m.REQUESTS.name, {m.OUTCOME: f"~{m.OUTCOME_ERROR}|{m.OUTCOME_ESCALATED}"}),
            q(m.REQUESTS.name),
        )
    if signal == Signal.LATENCY:
        sel = selector(policy, None, namespace)
        return (
            f"sum by ({group}, le) ({m.REQUEST_DURATION.name}_bucket{sel})",
            f"sum by ({group}) ({m.REQUEST_DURATION.name}_count{sel})",
        )
    raise ValueError(f"no built-in query for signal {signal}")


def pairwise_query(policy: str, namespace: tuple[str, str] | None = None) -> str:
    """The candidate's pairwise verdict counters of every tier, per series and verdict:
    its canary answers and its pre-flight mirrored answers (``arm="mirror"``), summed per
    series, so one e-process runs from pre-flight through the weighted steps (the router
    mirrors only during pre-flight)."""
    arms = f"~{Arm.CANARY.value}|{Arm.MIRROR.value}"
    sel = selector(policy, {m.ARM: arms}, namespace)
    return f"sum by ({m.TIER}, instance, {m.CLUSTER}, {m.VERDICT}) ({m.SHADOW_PAIRWISE.name}{sel})"


def preflight_spend_query(policy: str, namespace: tuple[str, str] | None = None) -> str:
    """Pre-flight spend (mirrored calls and judge calls) per tier and router instance."""
    sel = selector(policy, None, namespace)
    return f"sum by ({m.TIER}, instance) ({m.PREFLIGHT_SPEND.name}{sel})"


def preflight_traffic_query(policy: str, namespace: tuple[str, str] | None = None) -> str:
    """Requests a minute per tier over the last 15 minutes (every arm: during pre-flight
    the baseline serves them all), to size the mirror sample rates."""
    sel = selector(policy, None, namespace)
    return f"sum by ({m.TIER}) (rate({m.REQUESTS.name}{sel}[15m])) * 60"


def read_preflight_traffic(
    reader: PrometheusReader, policy: str, namespace: tuple[str, str] | None = None
) -> dict[str, float] | None:
    """``tier -> requests a minute``; None when the query failed."""
    promql = preflight_traffic_query(policy, namespace)
    try:
        return {
            item.get("metric", {}).get(m.TIER, ""): _value(promql, item)
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
            out.setdefault(labels.get(m.TIER, ""), {})[labels.get("instance", "")] = _value(
                promql, item
            )
        return out
    except (UnreachableError, QueryError) as exc:
        log.warning("pre-flight spend: %s", exc)
        return None


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
        out.setdefault(verdict, {})[_series_key(labels)] = _value(promql, item)
    return out


Series = dict[tuple[str, str], dict[str, float]]  # (tier, arm) -> {instance: value}


def _labels_text(labels: Mapping[str, str]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return "{" + inner + "}"


def _value(promql: str, item: Mapping[str, Any]) -> float:
    """A sample's value; NaN or ±Inf is a QueryError naming the query."""
    value = float(item["value"][1])
    if not math.isfinite(value):
        raise QueryError(
            f"query `{promql}` returned {value} for {_labels_text(item.get('metric', {}))}: "
            "a counter reading must be a finite number (NaN usually comes from 0/0)"
        )
    return value


def _series(result: Sequence[Mapping[str, Any]], promql: str) -> Series:
    out: Series = {}
    for item in result:
        labels = item.get("metric", {})
        value = _value(promql, item)
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        out.setdefault(key, {})[_series_key(labels)] = value
    return out


def _series_key(labels: Mapping[str, str]) -> str:
    """``instance`` or ``instance#cluster`` (statistics' per-cluster key format)."""
    instance = labels.get("instance", "")
    cluster = labels.get(m.CLUSTER, "")
    if cluster in ("", m.CLUSTER_NONE):
        return instance
    return f"{instance}{CLUSTER_SEP}{cluster}"


def _latency_total(buckets: Sequence[Mapping[str, Any]], promql: str) -> Series:
    """Per series: all requests, the ``le="+Inf"`` bucket (equal to ``_count``)."""
    total: Series = {}
    for item in buckets:
        labels = item.get("metric", {})
        if labels.get("le") != "+Inf":
            continue
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        total.setdefault(key, {})[labels.get("instance", "")] = _value(promql, item)
    return total


def _latency_bad(
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
        under.setdefault(key, {})[labels.get("instance", "")] = _value(promql, item)
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


class PrometheusReader:
    """A thin wrapper over ``prometheus_api_client.PrometheusConnect``."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        bearer_token: str | None = None,
        insecure_skip_verify: bool = False,
        at: float | None = None,
    ) -> None:
        import hashlib

        from prometheus_api_client import PrometheusConnect
        from urllib3.util.retry import Retry

        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        # No retries inside one look: the next interval is the retry, and a hung look
        # would delay a rollback elsewhere.
        self.url = url
        self.timeout = timeout
        #: Evaluate queries at this Unix time (None: now); tests pin it.
        self.at = at
        #: Who asks what: readers with equal identity may share query results (a token
        #: may scope what Prometheus returns, so it is part of it, hashed).
        token_hash = hashlib.sha256((bearer_token or "").encode()).hexdigest()[:16]
        self.identity = (url, token_hash, insecure_skip_verify)
        self._prom = PrometheusConnect(
            url=url,
            headers=headers,
            disable_ssl=insecure_skip_verify,
            retry=Retry(total=0),
            timeout=timeout,
        )

    def query(self, promql: str) -> list[dict[str, Any]]:
        import requests
        from prometheus_api_client.exceptions import PrometheusApiClientException

        try:
            params = {"time": f"{self.at:.3f}"} if self.at is not None else None
            out: list[dict[str, Any]] = self._prom.custom_query(
                promql, params=params, timeout=self.timeout
            )
            return out
        except requests.exceptions.ConnectionError as exc:
            raise UnreachableError(
                f"Prometheus at {self.url} unreachable: {type(exc).__name__}"
            ) from exc
        except requests.exceptions.Timeout as exc:
            raise UnreachableError(
                f"Prometheus at {self.url} timed out after {self.timeout:g}s"
            ) from exc
        except (
            PrometheusApiClientException,
            requests.exceptions.RequestException,
            ValueError,
            KeyError,
        ) as exc:
            raise QueryError(f"query failed: {str(exc)[:300]}") from exc


def _substitute(expr: str, tier: str, arm: str) -> str:
    return expr.replace("$tier", tier).replace("$arm", arm)


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
                        requests_flowing=_requests_flowing(builtin, g.tier),
                    )
                    continue
                if g.slice_name is not None:
                    from tierguard.operator.observeslices import read_slice_gate  # imports us

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


def custom_series(promql: str, result: Sequence[Mapping[str, Any]], which: str) -> dict[str, float]:
    """A Custom query's result as ``{series labels: count}``, or a QueryError that says
    why the readings are not per-process cumulative counts (see the module doc)."""
    out: dict[str, float] = {}
    for item in result:
        labels = {k: str(v) for k, v in item.get("metric", {}).items() if k != "__name__"}
        value = _value(promql, item)
        where = _labels_text(labels)
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


def _read_custom(run: Any, g: GateSpec) -> GateReading:
    if g.query is None:
        raise QueryError("signal Custom without query")
    arms: dict[str, ArmReading] = {}
    for arm in ARMS:
        bad_q = _substitute(g.query.bad, g.tier, arm)
        total_q = _substitute(g.query.total, g.tier, arm)
        total = custom_series(total_q, run(total_q), "total")
        bad = custom_series(bad_q, run(bad_q), "bad")
        if total:
            arms[arm] = ArmReading(bad=bad, total=total)
    return GateReading(arms=arms)


def _read_gate(run: Any, builtin: Any, g: GateSpec) -> GateReading:
    if g.signal == Signal.CUSTOM:
        custom = _read_custom(run, g)
        return GateReading(arms=custom.arms, requests_flowing=_requests_flowing(builtin, g.tier))
    name = f"the built-in {g.signal.value} query"
    flowing = _requests_flowing(builtin, g.tier)
    if g.signal == Signal.LATENCY:
        if g.latency_objective is None:
            raise QueryError("signal Latency without latencyObjective")
        # total and bad from the one bucket query (le="+Inf" is the count): read from two
        # queries, count and bucket come from different moments, their difference dips
        # whenever the second read is the older one, and a dip reads as a counter reset
        # (statistics.counter_delta counts the whole value again)
        buckets = builtin(g.signal, 0)
        total = _latency_total(buckets, f"{name} (bad)")
        bad = _latency_bad(buckets, total, g.latency_objective, f"{name} (bad)")
    else:
        total = _series(builtin(g.signal, 1), f"{name} (total)")
        bad = _series(builtin(g.signal, 0), f"{name} (bad)")
    arms = {}
    for arm in ARMS:
        t = total.get((g.tier, arm))
        if not t:
            continue
        arms[arm] = ArmReading(bad=bad.get((g.tier, arm), {}), total=t)
    return GateReading(arms=arms, requests_flowing=flowing)


def _requests_flowing(builtin: Any, tier: str) -> bool:
    """Whether the routers export request counters for ``tier`` (any arm): then a signal
    without events is quiet, not missing. The query is the ErrorRate total, so it is
    read at most once per look (or per shared round)."""
    requests = _series(builtin(Signal.ERROR_RATE, 1), "the built-in ErrorRate query (total)")
    return any(key[0] == tier and values for key, values in requests.items())
