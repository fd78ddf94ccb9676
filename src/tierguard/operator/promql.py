"""The operator's PromQL, built from the metric names in :mod:`tierguard.api.metrics` only.

Every query returns raw cumulative counters summed per ``instance`` (one series per router
process, and per user ``cluster`` where the routers export one), never ``increase()``,
which extrapolates to window edges and returns fractional counts.

Signals (bad / total, per arm):

* ThumbsDown: ``feedback_total{rating="down"}`` / ``feedback_total``
* ShadowDisagreement: ``shadow_judgements_total{verdict="disagree"}`` /
  ``shadow_judgements_total{verdict=~"agree|disagree"}`` (judge errors are not quality)
  -- with judge mode Pairwise instead every verdict of
  ``shadow_pairwise_total{arm=~"canary|mirror"}`` (worse, better, tie, inconsistent,
  error; ``mirror``: pre-flight) per series, for the paired gate
  (operator/pairedgate.py); always the policy's own query
* ErrorRate: ``requests_total{outcome=~"error|escalated"}`` / ``requests_total``
* Latency: ``bucket{le="+Inf"} - bucket{le=objective}`` / ``bucket{le="+Inf"}`` of
  ``request_duration_seconds`` (the router adds every objective as a bucket), all from the
  one bucket query so both counts are from the same scrape
* Custom: the policy's two PromQL expressions with ``$tier`` and ``$arm`` substituted
  (:func:`substitute`); what they must return is checked in
  :mod:`tierguard.operator.promseries`.

Pre-flight reads the mirror's spend and the traffic rate that sizes the mirror sample
rates (:func:`preflight_spend_query`, :func:`preflight_traffic_query`). Slice gates build
their own queries with :func:`selector` (:mod:`tierguard.operator.observeslices`).
"""

from __future__ import annotations

from collections.abc import Mapping

from tierguard.api import metrics as m
from tierguard.api.enums import Arm, Signal

__all__ = [
    "GROUP",
    "pairwise_query",
    "preflight_spend_query",
    "preflight_traffic_query",
    "selector",
    "signal_queries",
    "substitute",
]

GROUP = f"{m.TIER}, {m.ARM}, instance"


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


def substitute(expr: str, tier: str, arm: str) -> str:
    return expr.replace("$tier", tier).replace("$arm", arm)
