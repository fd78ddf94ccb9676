"""Prometheus I/O: which classifier (content digest) and config revision each router runs,
and the decision shadow's transition matrix (:func:`observe_transitions`).

One instant query of ``tierguard_classifier_info`` for the policy (or, with shared
queries, one for every policy per round, sliced); each series is one router process
(``instance``). Never raises: a failed query is a
:class:`~tierguard.operator.classifiercontent.RouterReports` with ``error``, which holds
the stage (see :func:`~tierguard.operator.classifiercontent.routers_hold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tierguard.api import metrics as m
from tierguard.operator.cellgates import CellCounts
from tierguard.operator.classifiercontent import RouterReport, RouterReports
from tierguard.operator.decisionshadow import TransitionCounts
from tierguard.operator.promql import selector
from tierguard.operator.promreader import PrometheusReader, QueryError
from tierguard.operator.shared_queries import SharedQueries


def info_query(policy: str | None, namespace: tuple[str, str] | None = None) -> str:
    """The policy's series (``policy`` None: every policy's, for a shared round)."""
    return f"{m.CLASSIFIER_INFO.name}{selector(policy, None, namespace)}"


def parse_reports(result: Sequence[Mapping[str, Any]]) -> RouterReports:
    """Series with value 1 (the info convention); one report per instance (a process that
    reports two at once, mid-reload, is listed twice and so holds)."""
    out = []
    for item in result:
        labels = item.get("metric", {})
        try:
            value = float(item["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if value != 1.0:
            continue
        out.append(
            RouterReport(
                instance=str(labels.get("instance", labels.get("pod", ""))),
                digest=str(labels.get(m.DIGEST, "")),
                revision=str(labels.get(m.REVISION, "")),
            )
        )
    return RouterReports(reports=tuple(out))


def observe_routers(
    reader: PrometheusReader,
    policy: str,
    namespace: tuple[str, str] | None = None,
    shared: SharedQueries | None = None,
) -> RouterReports:
    try:
        if shared is not None:
            return parse_reports(shared.sliced(reader, info_query(None), policy, namespace))
        return parse_reports(reader.query(info_query(policy, namespace)))
    except QueryError as exc:
        return RouterReports(error=str(exc)[:300])


def transitions_query(policy: str, revision: str, namespace: tuple[str, str] | None = None) -> str:
    """The revision's matrix summed over routers. Every router creates its cells at 0 when
    it loads the candidate, and the revision names the candidate, so the sum is what the
    routers counted for this shadow (a router that restarted lost its part: shares stay
    fair, the count is low)."""
    sel = selector(policy, {m.REVISION: revision}, namespace)
    return f"sum by ({m.FROM_TIER}, {m.TO_TIER}) ({m.CLASSIFIER_TRANSITIONS.name}{sel})"


def observe_transitions(
    reader: PrometheusReader,
    policy: str,
    revision: str,
    namespace: tuple[str, str] | None = None,
) -> TransitionCounts:
    """Never raises: a failed query is a :class:`TransitionCounts` with ``error``."""
    promql = transitions_query(policy, revision, namespace)
    try:
        cells: dict[tuple[str, str], float] = {}
        for item in reader.query(promql):
            labels = item.get("metric", {})
            key = (str(labels.get(m.FROM_TIER, "")), str(labels.get(m.TO_TIER, "")))
            value = float(item["value"][1])
            if value == value:  # NaN is no reading
                cells[key] = value
        return TransitionCounts(cells=cells)
    except (QueryError, KeyError, IndexError, TypeError, ValueError) as exc:
        return TransitionCounts(error=str(exc)[:300])


def cell_queries(policy: str, namespace: tuple[str, str] | None = None) -> dict[str, str]:
    """The classifier canary's counters summed over routers by (cell, decider)."""
    sel = selector(policy, None, namespace)
    by = f"{m.FROM_TIER}, {m.TO_TIER}, {m.DECIDER}"
    return {
        "requests": f"sum by ({by}) ({m.CLASSIFIER_CELL_REQUESTS.name}{sel})",
        "feedback": f"sum by ({by}, {m.RATING}) ({m.CLASSIFIER_CELL_FEEDBACK.name}{sel})",
        "cost": f"sum by ({by}) ({m.CLASSIFIER_CELL_COST.name}{sel})",
    }


def observe_cells(
    reader: PrometheusReader, policy: str, namespace: tuple[str, str] | None = None
) -> CellCounts:
    """Never raises: a failed query is a :class:`CellCounts` with ``error``. No series
    yet (nothing counted) is empty counts, not an error."""
    qs = cell_queries(policy, namespace)
    out: dict[str, dict[tuple[str, str, str], float]] = {
        "requests": {},
        "rated": {},
        "bad": {},
        "cost": {},
    }
    try:
        for name, promql in qs.items():
            for item in reader.query(promql):
                labels = item.get("metric", {})
                key = (
                    str(labels.get(m.FROM_TIER, "")),
                    str(labels.get(m.TO_TIER, "")),
                    str(labels.get(m.DECIDER, "")),
                )
                value = float(item["value"][1])
                if value != value:
                    continue
                if name == "feedback":
                    out["rated"][key] = out["rated"].get(key, 0.0) + value
                    if labels.get(m.RATING) == m.RATING_DOWN:
                        out["bad"][key] = out["bad"].get(key, 0.0) + value
                else:
                    out[name][key] = value
    except (QueryError, KeyError, IndexError, TypeError, ValueError) as exc:
        return CellCounts(error=str(exc)[:300])
    return CellCounts(out["requests"], out["rated"], out["bad"], out["cost"])
