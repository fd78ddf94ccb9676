"""Planning turns of a conversation: identical on every replica, tiers only go up,
tool-result turns stay with the model that issued the call, fallbacks only upward,
prompts too long for a model climb."""

from __future__ import annotations

from typing import Any

import pytest

from routerkit import router_config
from tierguard.api.enums import Arm, KeySource
from tierguard.api.routerconfig import RouterConfig
from tierguard.classifier.runtime import Classification
from tierguard.router.conversation import Planner, TurnPlan, plan_turn
from tierguard.router.ladder import build_ladder
from tierguard.router.tiering import TierCache
from tierguard.router.toolcalls import Lock, unwrap, wrap

KEY = b"s" * 32


def keyword_classifier(texts: list[str]) -> list[Classification]:
    out = []
    for t in texts:
        tier = "complex" if "legal" in t else "simple"
        out.append(Classification(tier, {"simple": float(tier == "simple")}))
    return out


def config(weight: float = 50.0, **overrides: Any) -> RouterConfig:
    return RouterConfig.model_validate(router_config("/x.onnx", weight=weight, **overrides))


def planner(cfg: RouterConfig, cache_size: int = 100) -> Planner:
    return Planner(
        config=cfg,
        routes={r.tier: r for r in cfg.routes},
        budgets={r.tier: 2.0 for r in cfg.routes},
        ladder=build_ladder(
            [t.name for t in cfg.classifier.tiers],
            [(r.tier, r.baseline, r.candidate, r.fallbacks) for r in cfg.routes],
            {m.name: m.context_window for m in cfg.models},
        ),
        cache=TierCache(cache_size),
        classify=keyword_classifier,
        signing_key=KEY,
    )


def plan(p: Planner, messages: list[dict[str, Any]], **kw: Any) -> TurnPlan:
    return plan_turn(
        p,
        messages=messages,
        body={"model": "auto", "messages": messages, **kw.pop("body", {})},
        user=kw.pop("user", None),
        headers=kw.pop("headers", {}),
        request_id=kw.pop("request_id", "rid"),
        request_text=next((m["content"] for m in reversed(messages) if m["role"] == "user"), ""),
    )


def user(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": text}


def test_a_simple_follow_up_stays_on_the_complex_tier() -> None:
    p = planner(config())
    convo = [user("a legal question about my refund"), assistant("...")]
    convo.append(user("ok thanks, and where is my order?"))
    t = plan(p, convo)
    assert t.route.tier == "complex" and t.previous_tier == "complex"
    per_request = planner(config(classifier={"tiering": "Request"}))
    assert plan(per_request, convo).route.tier == "simple"  # what sessions fix


def test_the_tier_change_is_reported_once() -> None:
    p = planner(config())
    t = plan(p, [user("where is my order"), assistant("x"), user("legal analysis please")])
    assert (t.previous_tier, t.route.tier) == ("simple", "complex")


def test_two_replicas_plan_the_same_turns() -> None:
    a, b = planner(config()), planner(config(), cache_size=0)
    for i in range(40):
        convo = [{"role": "system", "content": "sys"}, user(f"question {i} about my order")]
        convo += [assistant("a"), user("and a legal analysis?" if i % 3 == 0 else "thanks")]
        pa, pb = plan(a, convo), plan(b, convo)
        assert pa.route == pb.route and pa.key_source is KeySource.FINGERPRINT


def test_arms_follow_the_session_key_source() -> None:
    p = planner(config())
    convo = [user("where is my order")]
    assert plan(p, convo, headers={"x-session-id": "s1"}).key_source is KeySource.HEADER
    assert plan(p, convo, body={"prompt_cache_key": "k"}).key_source is KeySource.PROMPT_CACHE_KEY
    assert plan(p, convo, user="u").key_source is KeySource.USER
    buckets = {plan(p, convo, headers={"x-session-id": f"s{i}"}).route.bucket for i in range(50)}
    assert len(buckets) > 40  # sessions spread over the buckets


def tool_turn(issuer: Lock) -> list[dict[str, Any]]:
    cid = wrap("call_up_1", issuer, KEY)
    return [
        user("where is my order"),
        {"role": "assistant", "content": None, "tool_calls": [{"id": cid, "type": "function"}]},
        {"role": "tool", "tool_call_id": cid, "content": "shipped"},
    ]


def test_a_tool_result_goes_back_to_the_issuer_even_after_the_weight_moved() -> None:
    issuer = Lock("small", "simple", "canary")
    for weight in (0.0, 100.0):  # the recomputed arm would say otherwise at 0
        t = plan(planner(config(weight=weight)), tool_turn(issuer))
        assert t.stateful and t.lock == issuer
        assert t.route.chain[0] == "small" and t.route.arm is Arm.CANARY
        assert t.route.tier == "simple"
        # the upstream sees its own id again
        assert t.messages[-1]["tool_call_id"] == "call_up_1"
        assert t.messages[1]["tool_calls"][0]["id"] == "call_up_1"


def test_a_locked_turn_falls_back_only_upward() -> None:
    cfg = config(
        routes=[
            {"tier": "simple", "baseline": "small", "fallbacks": ["big"]},
            {"tier": "complex", "baseline": "big", "fallbacks": ["small"]},
        ],
        split=[],
    )
    t = plan(planner(cfg), tool_turn(Lock("big", "complex", "stable")))
    assert t.route.chain == ("big",)


def test_an_unverifiable_id_is_routed_again_from_the_conversation() -> None:
    msgs = tool_turn(Lock("small", "simple", "canary"))
    forged = msgs[2]["tool_call_id"].replace(".small.", ".big.")
    msgs[2] = {**msgs[2], "tool_call_id": forged}
    msgs[1] = {**msgs[1], "tool_calls": [{"id": forged, "type": "function"}]}
    t = plan(planner(config()), msgs)
    assert t.stateful and t.lock is None and t.route.tier == "simple"
    assert unwrap(forged, KEY) == ("call_up_1", None)
    assert t.messages[2]["tool_call_id"] == "call_up_1"  # still unwrapped for the upstream


def test_a_lock_to_a_removed_model_is_reported() -> None:
    t = plan(planner(config()), tool_turn(Lock("gone", "simple", "canary")))
    assert t.lock_lost and t.lock is None and t.route.chain[0] in ("small", "big")


def test_fallbacks_never_go_to_a_cheaper_tier() -> None:
    cfg = config(
        routes=[
            {"tier": "simple", "baseline": "small"},
            {"tier": "complex", "baseline": "big", "fallbacks": ["small"]},
        ],
        split=[],
    )
    t = plan(planner(cfg), [user("legal analysis")])
    assert t.route.chain == ("big",)


@pytest.mark.parametrize("weight", [0.0, 100.0])
def test_a_prompt_too_long_for_the_model_climbs(weight: float) -> None:
    models = config().model_dump(by_alias=True)["models"]
    for m in models:
        m["contextWindow"] = 200 if m["name"] == "small" else 100_000
    p = planner(config(weight=weight, models=models))
    short = plan(p, [user("where is my order")], headers={"x-session-id": "s"})
    long = plan(p, [user("where is my order " + "word " * 500)], headers={"x-session-id": "s"})
    assert short.context_escalation is None
    if weight == 100.0:
        assert short.route.chain[0] == "small"
        assert long.context_escalation == ("small", "big") and long.route.chain == ("big",)
        assert long.route.arm is Arm.CANARY  # the arm (the unit's assignment) is kept
    else:
        assert long.context_escalation is None and long.route.chain[0] == "big"


def test_a_failing_classifier_routes_to_the_catch_all_tier() -> None:
    p = planner(config())

    def broken(texts: list[str]) -> list[Classification]:
        raise RuntimeError("onnx")

    from dataclasses import replace

    t = plan(replace(p, classify=broken), [user("where is my order")])
    assert t.route.tier == "complex"


def labelling_classifier(texts: list[str]) -> list[Classification]:
    """The keyword tiers plus a category label: the first word of the message."""
    return [
        Classification(c.tier, c.probabilities, category=t.split()[0])
        for c, t in zip(keyword_classifier(texts), texts, strict=True)
    ]


def test_the_turn_carries_the_category_of_the_message_that_decided_the_tier() -> None:
    from dataclasses import replace

    for tiering in ("Session", "Request"):
        p = replace(planner(config(classifier={"tiering": tiering})), classify=labelling_classifier)
        assert plan(p, [user("billing where is my invoice")]).category == "billing"
    session = replace(planner(config()), classify=labelling_classifier)
    convo = [user("disputes a legal question"), assistant("..."), user("orders where is it")]
    t = plan(session, convo)
    assert t.route.tier == "complex" and t.category == "disputes"  # the deciding message
    assert plan(planner(config()), [user("where is my order")]).category is None  # no head
