"""Batched signal queries: one query per signal and round, sliced per policy (the real
Prometheus equivalence is in tests/integration/test_shared_queries.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tierguard.api.enums import Signal
from tierguard.operator import promql, promreader
from tierguard.operator.shared_queries import SharedQueries, split_by_policy


class StubReader(promreader.PrometheusReader):
    """Answers every query with ``rows`` (asks no server)."""

    def __init__(
        self, rows: list[dict[str, Any]], identity: tuple[str, str, bool] = ("u", "", False)
    ) -> None:
        self.rows = rows
        self.identity = identity
        self.asked: list[str] = []
        self.fail: Exception | None = None

    def query(self, promql: str) -> list[dict[str, Any]]:
        self.asked.append(promql)
        if self.fail is not None:
            raise self.fail
        return self.rows


def row(policy: str, ns: str, tier: str, value: float) -> dict[str, Any]:
    labels = {"policy": policy, "namespace": ns, "tier": tier, "arm": "canary", "instance": "i"}
    return {"metric": labels, "value": [0, str(value)]}


def test_batched_query_is_the_per_policy_query_grouped_by_policy() -> None:
    per, _ = promql.signal_queries(Signal.THUMBS_DOWN, "shop", ("namespace", "a"))
    bad, _ = promql.signal_queries(Signal.THUMBS_DOWN, None, namespace_label="namespace")
    assert bad == (
        "sum by (tier, arm, instance, policy, namespace, cluster) "
        '(tierguard_feedback_total{policy!="", rating="down"})'
    )
    assert (
        per.replace('policy="shop", namespace="a"', 'policy!=""').replace(
            "instance, cluster)", "instance, policy, namespace, cluster)"
        )
        == bad
    )
    lat_bad, _ = promql.signal_queries(Signal.LATENCY, None)
    assert lat_bad.startswith("sum by (tier, arm, instance, policy, le)")


def test_split_drops_only_the_grouping_labels() -> None:
    rows = [row("a", "x", "simple", 1), row("a", "y", "simple", 2), row("b", "x", "simple", 3)]
    by = split_by_policy(rows, "namespace")
    assert [r["value"][1] for r in by[("a", "x")]] == ["1"]
    assert by[("a", "y")][0]["metric"] == {"tier": "simple", "arm": "canary", "instance": "i"}
    assert split_by_policy(rows, None)[("a", None)][1]["value"][1] == "2"


def test_one_query_per_round_for_any_number_of_policies() -> None:
    now = [0.0]
    shared = SharedQueries(max_age=5.0, clock=lambda: now[0])
    reader = StubReader([row(f"p{i}", "ns", "simple", i) for i in range(50)])
    ns = ("namespace", "ns")
    for i in range(50):
        got = shared.results(reader, Signal.THUMBS_DOWN, 1, f"p{i}", ns)
        assert [r["value"][1] for r in got] == [str(i)]
    assert len(reader.asked) == 1
    assert shared.results(reader, Signal.THUMBS_DOWN, 1, "nope", ns) == []
    now[0] = 5.0
    shared.results(reader, Signal.THUMBS_DOWN, 1, "p1", ns)
    assert len(reader.asked) == 2, "a new round asks again"
    other = StubReader(reader.rows, identity=("u", "other-token", False))
    shared.results(other, Signal.THUMBS_DOWN, 1, "p1", ns)
    assert len(other.asked) == 1, "other credentials never share results"


def test_a_failed_round_fails_every_policy_without_asking_again() -> None:
    shared = SharedQueries(max_age=5.0, clock=lambda: 0.0)
    reader = StubReader([])
    reader.fail = promreader.UnreachableError("down")
    for name in ("a", "b", "c"):
        with pytest.raises(promreader.UnreachableError):
            shared.results(reader, Signal.ERROR_RATE, 0, name, None)
    assert len(reader.asked) == 1
