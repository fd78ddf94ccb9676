"""Batched signal queries: one query per signal and round, sliced per policy (the real
Prometheus equivalence is in tests/integration/test_shared_queries.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tierguard.api.enums import Signal
from tierguard.operator import promql, promreader
from tierguard.operator.shared_queries import (
    SharedQueries,
    compact_by_policy,
    expand,
    split_by_policy,
)


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


def test_compact_rounds_give_back_the_same_slices_and_share_label_sets() -> None:
    rows = [row(f"p{i}", "x", tier, i) for i in range(20) for tier in ("simple", "tricky")]
    rows.append({"metric": {"policy": "p0", "namespace": "x"}, "value": [1.5, "7"]})
    compact = compact_by_policy(rows, "namespace")
    for key, samples in compact.items():
        want = [
            {
                **r,
                "metric": {
                    k: v for k, v in r["metric"].items() if k not in ("policy", "namespace")
                },
            }
            for r in rows
            if (r["metric"]["policy"], r["metric"]["namespace"]) == key
        ]
        assert expand(samples) == want
    assert expand(compact[("p0", "x")])[-1] == {"metric": {}, "value": [1.5, "7"]}
    assert compact[("p1", "x")][0][0] is compact[("p2", "x")][0][0], "one label set, kept once"


def test_a_round_too_old_to_use_is_dropped_at_the_next_query() -> None:
    now = [0.0]
    shared = SharedQueries(max_age=5.0, clock=lambda: now[0])
    reader = StubReader([row(f"p{i}", "ns", "simple", i) for i in range(10)])
    ns = ("namespace", "ns")
    shared.results(reader, Signal.THUMBS_DOWN, 0, "p1", ns)
    assert shared.held() == 10
    now[0] = 4.0
    shared.results(reader, Signal.THUMBS_DOWN, 1, "p1", ns)
    assert shared.held() == 20, "both rounds still usable"
    now[0] = 6.0
    got = shared.results(reader, Signal.THUMBS_DOWN, 1, "p2", ns)
    assert [r["value"][1] for r in got] == ["2"] and len(reader.asked) == 2, "reused"
    assert shared.held() == 10, "the first round is too old: its series are gone"
    now[0] = 9.5
    again = shared.results(reader, Signal.THUMBS_DOWN, 0, "p3", ns)
    assert [r["value"][1] for r in again] == ["3"] and len(reader.asked) == 3, "fetched again"
