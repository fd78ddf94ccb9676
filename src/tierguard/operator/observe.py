"""Prometheus I/O: raw counter readings per tier × arm × router instance for every gate.

PromQL is built from the metric names in :mod:`tierguard.api.metrics` only. Readings are
raw cumulative counters, summed per ``instance`` (one series per router process) so that
the statistics can detect a counter reset of one router without it being hidden by the
others' growth; the increase over an interval is computed by the gates, never by
``increase()``, which extrapolates to window edges and returns fractional counts.

Failures never raise: an unreachable Prometheus gives ``Observations(error=...)`` and a
failed query gives that gate a ``GateReading(error=...)``. Both become NoData verdicts,
which hold a stage and never advance it.

Signals (bad / total, per arm):

* ThumbsDown: ``feedback_total{rating="down"}`` / ``feedback_total``
* ShadowDisagreement: ``shadow_judgements_total{verdict="disagree"}`` /
  ``shadow_judgements_total{verdict=~"agree|disagree"}`` (judge errors are not quality)
* ErrorRate: ``requests_total{outcome=~"error|escalated"}`` / ``requests_total``
* Latency: ``request_duration_seconds_count - request_duration_seconds_bucket{le=objective}``
  / ``request_duration_seconds_count`` (the router adds every objective as a bucket)
* Custom: the policy's two PromQL expressions with ``$tier`` and ``$arm`` substituted.
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
from tierguard.operator.gates import GateReading, GateSpec, Observations
from tierguard.operator.statistics import ArmReading

log = logging.getLogger("tierguard.operator.observe")

ARMS = (Arm.CONTROL.value, Arm.HOLDBACK.value, Arm.CANARY.value)
GROUP = f"{m.TIER}, {m.ARM}, instance"


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
        return f"sum by ({group}) ({metric}{selector(policy, extra, namespace)})"

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


Series = dict[tuple[str, str], dict[str, float]]  # (tier, arm) -> {instance: value}


def _series(result: Sequence[Mapping[str, Any]]) -> Series:
    out: Series = {}
    for item in result:
        labels = item.get("metric", {})
        value = float(item["value"][1])
        if math.isnan(value):
            continue
        key = (labels.get(m.TIER, ""), labels.get(m.ARM, ""))
        out.setdefault(key, {})[labels.get("instance", "")] = value
    return out


def _latency_bad(buckets: Sequence[Mapping[str, Any]], counts: Series, objective: float) -> Series:
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
        under.setdefault(key, {})[labels.get("instance", "")] = float(item["value"][1])
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


def _read_gate(run: Any, builtin: Any, g: GateSpec) -> GateReading:
    if g.signal == Signal.CUSTOM:
        if g.query is None:
            raise QueryError("signal Custom without query")
        arms: dict[str, ArmReading] = {}
        for arm in ARMS:
            bad = run(_substitute(g.query.bad, g.tier, arm))
            total = run(_substitute(g.query.total, g.tier, arm))
            if not total:
                continue
            arms[arm] = ArmReading(
                bad={"": sum(float(x["value"][1]) for x in bad)},
                total={"": sum(float(x["value"][1]) for x in total)},
            )
        return GateReading(arms=arms)
    total = _series(builtin(g.signal, 1))
    if g.signal == Signal.LATENCY:
        if g.latency_objective is None:
            raise QueryError("signal Latency without latencyObjective")
        bad = _latency_bad(builtin(g.signal, 0), total, g.latency_objective)
    else:
        bad = _series(builtin(g.signal, 0))
    arms = {}
    for arm in ARMS:
        t = total.get((g.tier, arm))
        if not t:
            continue
        arms[arm] = ArmReading(bad=bad.get((g.tier, arm), {}), total=t)
    return GateReading(arms=arms)
