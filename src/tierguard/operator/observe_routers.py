"""Prometheus I/O: which classifier (content digest) and config revision each router runs.

One instant query of ``tierguard_classifier_info`` for the policy; each series is one
router process (``instance``). Never raises: a failed query is a
:class:`~tierguard.operator.classifiercontent.RouterReports` with ``error``, which holds
the stage (see :func:`~tierguard.operator.classifiercontent.routers_hold`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from tierguard.api import metrics as m
from tierguard.operator.classifiercontent import RouterReport, RouterReports
from tierguard.operator.observe import QueryError, selector


class _Reader(Protocol):
    def query(self, promql: str) -> list[dict[str, Any]]: ...


def info_query(policy: str, namespace: tuple[str, str] | None = None) -> str:
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
    reader: _Reader, policy: str, namespace: tuple[str, str] | None = None
) -> RouterReports:
    promql = info_query(policy, namespace)
    try:
        return parse_reports(reader.query(promql))
    except QueryError as exc:
        return RouterReports(error=str(exc)[:300])
