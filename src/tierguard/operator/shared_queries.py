"""One Prometheus query per signal and evaluation round, shared by every policy.

Per-policy queries cost ``policies × signals × 2`` queries per interval; here the
*batched* form of each built-in query (:func:`~tierguard.operator.promql.signal_queries`
with ``policy=None``: all policies' series, grouped also by ``policy`` and the namespace
label) runs once per round and is sliced per policy. A policy's slice holds exactly the
series its own query would return (the same aggregation over the same series; counters
are integers, so the sums are exact), so gate readings do not change; the query load
depends on the signals in use, not on the number of policies.

A round is ``max_age`` seconds: a result (or a failure: an unreachable Prometheus is not
asked again by every policy) younger than that is reused; an older one is fetched again
by the first policy that needs it while the others wait for it. A round holds every
policy's series, so it is kept compact (:func:`compact_by_policy`: one tuple per series,
equal label sets shared; a policy's slice is built as dicts when it is read) and dropped
once it is too old to be used. Each fetch has the
reader's timeout as its deadline, so a slow Prometheus delays a round by at most that.
Readers that differ in URL or credentials never share results.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tierguard.api import metrics as m
from tierguard.api.enums import Signal
from tierguard.operator.promql import signal_queries
from tierguard.operator.promreader import PrometheusReader, QueryError

PolicyKey = tuple[str, str | None]  # (policy, namespace label value or None)
#: One series of a result, compact: (its labels, the other fields such as ``value``).
Sample = tuple[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]


@dataclass
class _Round:
    fetched_at: float = float("-inf")
    by_policy: dict[PolicyKey, list[Sample]] = field(default_factory=dict)
    error: QueryError | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def compact_by_policy(
    result: list[dict[str, Any]], namespace_label: str | None
) -> dict[PolicyKey, list[Sample]]:
    """A batched result per policy, without the grouping labels it added, as tuples
    (about a third of the memory of the parsed dicts; a label set that recurs -- the
    same tier, arm and router in every policy -- is kept once)."""
    out: dict[PolicyKey, list[Sample]] = {}
    drop = {m.POLICY, namespace_label} - {None}
    labelsets: dict[tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]] = {}
    for item in result:
        labels = item.get("metric", {})
        key = (labels.get(m.POLICY, ""), labels.get(namespace_label) if namespace_label else None)
        own = tuple((k, v) for k, v in labels.items() if k not in drop)
        own = labelsets.setdefault(own, own)
        rest = tuple((k, v) for k, v in item.items() if k != "metric")
        out.setdefault(key, []).append((own, rest))
    return out


def expand(samples: list[Sample]) -> list[dict[str, Any]]:
    """Compact samples as the result items a query returns (``metric``, ``value``)."""
    return [{"metric": dict(own), **dict(rest)} for own, rest in samples]


def split_by_policy(
    result: list[dict[str, Any]], namespace_label: str | None
) -> dict[PolicyKey, list[dict[str, Any]]]:
    """A batched result as per-policy results (without the grouping labels it added)."""
    return {k: expand(v) for k, v in compact_by_policy(result, namespace_label).items()}


class SharedQueries:
    """Batched built-in signal queries, refreshed at most once per ``max_age`` seconds.
    Thread-safe: reconciles of many policies call :meth:`results` concurrently."""

    def __init__(self, max_age: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._lock = threading.Lock()
        self._rounds: dict[tuple[Any, str], _Round] = {}
        #: Queries sent (for tests and the operator's own accounting).
        self.queries = 0

    def results(
        self,
        reader: PrometheusReader,
        signal: Signal,
        which: int,
        policy: str,
        namespace: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:
        """This policy's part of the signal's bad (``which`` 0) or total (1) query."""
        label = namespace[0] if namespace is not None else None
        return self.sliced(
            reader, signal_queries(signal, None, namespace_label=label)[which], policy, namespace
        )

    def sliced(
        self,
        reader: PrometheusReader,
        promql: str,
        policy: str,
        namespace: tuple[str, str] | None,
    ) -> list[dict[str, Any]]:
        """This policy's part of ``promql``, a query over every policy's series whose
        results keep the ``policy`` (and namespace) label."""
        label = namespace[0] if namespace is not None else None
        with self._lock:
            rnd = self._rounds.setdefault((reader.identity, promql), _Round())
            stale = [r for r in self._rounds.values() if r is not rnd and self._stale(r)]
        for other in stale:
            self._drop(other)
        with rnd.lock:  # one fetch per round; the others wait for it and share it
            if self._stale(rnd):
                try:
                    raw = reader.query(promql)
                    rnd.by_policy, rnd.error = compact_by_policy(raw, label), None
                except QueryError as exc:  # includes UnreachableError
                    rnd.by_policy, rnd.error = {}, exc
                rnd.fetched_at = self.clock()
                self.queries += 1
            if rnd.error is not None:
                raise rnd.error
            return expand(rnd.by_policy.get((policy, namespace[1] if namespace else None), []))

    def _stale(self, rnd: _Round) -> bool:
        """Too old to be used: the next reader fetches it again."""
        return self.clock() - rnd.fetched_at >= self.max_age

    def _drop(self, rnd: _Round) -> None:
        """Free a stale round's results (unless someone is fetching it right now)."""
        if not rnd.by_policy or not rnd.lock.acquire(blocking=False):
            return
        try:
            if self._stale(rnd):
                rnd.by_policy = {}
        finally:
            rnd.lock.release()

    def held(self) -> int:
        """Series kept over all rounds (for tests)."""
        with self._lock:
            rounds = list(self._rounds.values())
        return sum(len(v) for r in rounds for v in r.by_policy.values())
