"""Turn accounting: metrics and decision-log fields of a conversation turn."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from tierguard.api.enums import Arm, KeySource
from tierguard.router.conversation import SOURCE_CLASSIFIER, SOURCE_LOCKED, TurnPlan
from tierguard.router.ladder import build_ladder
from tierguard.router.metrics import RouterMetrics
from tierguard.router.split import RoutePlan
from tierguard.router.toolcalls import Lock
from tierguard.router.turnmetrics import cached_tokens, observe_plan, observe_served

LADDER = build_ladder(
    ["simple", "complex"],
    [("simple", "big", "small", ["big"]), ("complex", "big", None, [])],
    {"big": None, "small": 100},
)


def value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    return reg.get_sample_value(name, labels) or 0.0


def turn(**kw: object) -> TurnPlan:
    base: dict[str, object] = {
        "route": RoutePlan("simple", Arm.CANARY, ("small", "big"), 2.0, 7, "big"),
        "key_source": KeySource.HEADER,
        "probabilities": None,
        "previous_tier": None,
        "stateful": False,
        "lock": None,
        "messages": [],
        "source": SOURCE_CLASSIFIER,
    }
    base.update(kw)
    return TurnPlan(**base)  # type: ignore[arg-type]


def test_plan_metrics() -> None:
    m = RouterMetrics()
    observe_plan(m, "p", turn(previous_tier="simple", classified=1, cache_hits=3))
    observe_plan(m, "p", turn(context_escalation=("small", "big")))
    r = m.registry
    assert value(r, "tierguard_session_keys_total", policy="p", key_source="header") == 2
    assert value(r, "tierguard_classifier_cache_total", policy="p", outcome="hit") == 3
    assert value(r, "tierguard_classifier_cache_total", policy="p", outcome="miss") == 1
    labels = {"policy": "p", "tier": "simple", "arm": "canary", "from_model": "small"}
    assert (
        value(r, "tierguard_escalations_total", **labels, to_model="big", reason="context_window")
        == 1
    )
    assert (
        value(
            r,
            "tierguard_session_tier_changes_total",
            policy="p",
            from_tier="simple",
            to_tier="simple",
        )
        == 0
    )


def test_served_locked_fallback_and_fields() -> None:
    m = RouterMetrics()
    lock = Lock("small", "simple", "canary")
    locked = turn(stateful=True, lock=lock, source=SOURCE_LOCKED)
    usage = {"prompt_tokens": 10, "prompt_tokens_details": {"cached_tokens": 6}}
    f = observe_served(m, "p", locked, LADDER, model="small", usage=usage)
    assert (f.locked_to, f.stateful, f.cached_tokens, f.tier_fallback_from) == (
        "small",
        True,
        6,
        None,
    )
    f = observe_served(m, "p", locked, LADDER, model="big", usage=None)
    assert f.tier_fallback_from == "simple" and f.cached_tokens is None
    r = m.registry
    route = {"policy": "p", "tier": "simple", "arm": "canary"}
    assert value(r, "tierguard_stateful_turns_total", **route, model="small", outcome="locked") == 1
    assert value(r, "tierguard_stateful_turns_total", **route, model="big", outcome="fallback") == 1
    assert value(r, "tierguard_tokens_total", **route, model="small", kind="cached") == 6
    assert value(r, "tierguard_unsafe_switches_total", policy="p", tier="simple") == 0


def test_a_lock_to_a_model_gone_is_an_unsafe_switch() -> None:
    m = RouterMetrics()
    observe_plan(m, "p", turn(stateful=True, lock_lost=True))
    assert value(m.registry, "tierguard_unsafe_switches_total", policy="p", tier="simple") == 1


def test_cached_tokens_reads_garbage_as_zero() -> None:
    assert cached_tokens({"prompt_tokens_details": {"cached_tokens": 5}}) == 5
    garbage: list[dict[str, Any] | None] = [
        None,
        {},
        {"prompt_tokens_details": []},
        {"prompt_tokens_details": {"cached_tokens": "x"}},
    ]
    for bad in garbage:
        assert cached_tokens(bad) == 0
    assert cached_tokens({"prompt_tokens_details": {"cached_tokens": float("nan")}}) == 0
