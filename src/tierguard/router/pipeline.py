"""The request path of one chat completion: ``plan`` → ``call`` → ``account``.

* :func:`plan` plans a routed request as a turn of its conversation (session key, tier,
  arm and model chain: :func:`tierguard.router.conversation.plan_turn`) or pins the model
  the client named: a :class:`Planned`.
* :func:`call` runs the fallback chain upstream (:func:`tierguard.router.chain.run_chain`)
  with a :class:`ChainEvents` observer that turns attempts into metrics (the call step
  lives in :mod:`~tierguard.router.calling`, re-exported here).
* The view writes the answer to the client (:mod:`tierguard.router.relay`), which reports
  what the client actually got as a :class:`Delivery`.
* :func:`account` (or :func:`account_failure`) records it once: the request metrics, the
  tokens and cost (:func:`usage_cost`, the one place cost is computed), the decision-log
  line (:class:`DecisionRecord`), the review sample, and the shadow evaluation it may
  start (:mod:`~tierguard.router.shadowing`).

Each step takes and returns typed records; the aiohttp view in ``app.py`` only sequences
them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping
from typing import Any

from tierguard.api import metrics as mdefs
from tierguard.router.calling import ChainEvents, call, call_builder, sign, tool_call_wrapper
from tierguard.router.chain import ChainResult
from tierguard.router.chat import ChatRequest, classifier_text
from tierguard.router.conversation import TurnPlan, plan_turn
from tierguard.router.decision_log import DecisionRecord, hash_user
from tierguard.router.errors import ModelNotFoundError, RouterError, http_status
from tierguard.router.metrics import RouterMetrics
from tierguard.router.mirroring import try_mirror, wants_mirror
from tierguard.router.overhead import ClassifierTimer
from tierguard.router.records import (
    CLIENT_DISCONNECTED,
    SOURCE_PINNED,
    Classification,
    Delivery,
    Planned,
    usage_cost,
)
from tierguard.router.runtime import Runtime
from tierguard.router.shadowing import MAX_SHADOWS_IN_FLIGHT, shadow, wants_shadow
from tierguard.router.slicing import slice_labels
from tierguard.router.split import cluster_label, plan_pinned
from tierguard.router.state import RouterState
from tierguard.router.toolcalls import has_wrapped_ids, unwrap_messages
from tierguard.router.turnmetrics import observe_plan, observe_served

log = logging.getLogger("tierguard.router")

# --------------------------------------------------------------------------- plan


def plan(
    state: RouterState,
    req: ChatRequest,
    *,
    request_id: str,
    stickiness_header: str | None,
    metrics: RouterMetrics,
    started: float,
    wall_start: float,
    headers: Mapping[str, str] | None = None,
) -> Planned:
    """Plan a routed request as a turn of its conversation (session key, session tier,
    tool-call lock, upward-only chain, context window: :mod:`~tierguard.router.conversation`)
    or pin the model the client named. Raises :class:`ModelNotFoundError` for an unknown
    model name. ``headers`` are the request's (the session and stickiness headers)."""
    config = state.config
    turn: TurnPlan | None = None
    classify_s = 0.0
    slices: tuple[tuple[str, str], ...] = ()
    if req.model in state.routed_names:
        request_headers = headers
        if headers is None:
            headers = {config.stickiness.header: stickiness_header} if stickiness_header else {}
        timer = ClassifierTimer(state.classifier.classify_batch)
        turn = plan_turn(
            state.planner(timer),
            messages=req.messages,
            body=req.body,
            user=req.user,
            headers=headers,
            request_id=request_id,
            request_text=classifier_text(
                req.messages, config.classifier.input, config.classifier.max_input_chars
            ),
        )
        classify_s = timer.seconds
        slices = slice_labels(config.slices, req.body, request_headers, turn.category)
        pick = turn.classifier_pick
        if pick is not None:  # a classifier change: the candidate scored this request
            metrics.child(
                metrics.classifier_transitions,
                config.policy,
                config.revision,
                pick.from_tier,
                pick.to_tier,
            ).inc()
        if turn.classified:
            metrics.child(metrics.classifier_duration, config.policy).observe(classify_s)
        observe_plan(metrics, config.policy, turn)
        route_plan = turn.route
        c = Classification(route_plan.tier, turn.probabilities, turn.source)
        if turn.messages is not req.messages:  # tool-call ids unwrapped for the upstream
            req = dataclasses.replace(
                req, messages=turn.messages, body={**req.body, "messages": turn.messages}
            )
    elif req.model in state.models:
        route_plan = plan_pinned(req.model, state.deadline_s)
        c = Classification(route_plan.tier, None, SOURCE_PINNED)
        if has_wrapped_ids(req.messages):  # a conversation that was routed before
            messages = unwrap_messages(req.messages, state.signing_key)
            req = dataclasses.replace(
                req, messages=messages, body={**req.body, "messages": messages}
            )
    else:
        raise ModelNotFoundError(
            f"The model '{req.model}' does not exist. Use 'auto' (routed) or one of: "
            f"{', '.join(sorted(state.models))}.",
            param="model",
        )
    return Planned(
        req=req,
        request_id=request_id,
        route=route_plan,
        classification=c,
        wall_start=wall_start,
        started=started,
        deadline=started + state.deadline_s,
        turn=turn,
        classify_s=classify_s,
        slices=slices,
    )


# --------------------------------------------------------------------------- account


def _record(
    state: RouterState,
    planned: Planned,
    events: ChainEvents,
    *,
    model: str | None,
    outcome: str,
    status: int,
    elapsed: float,
    chain: list[str],
    **extra: Any,
) -> DecisionRecord:
    config = state.config
    return DecisionRecord(
        ts=round(planned.wall_start, 3),
        request_id=planned.request_id,
        user_hash=hash_user(config.salt, planned.req.user),
        policy=config.policy,
        revision=config.revision,
        tier=planned.tier,
        probabilities=planned.classification.probabilities,
        tier_source=planned.classification.source,
        bucket=planned.route.bucket,
        arm=planned.arm,
        stream=planned.req.stream,
        model=model,
        outcome=outcome,
        status=status,
        latency_s=round(elapsed, 4),
        chain=chain,
        escalations=events.escalations,
        slices=dict(planned.slices) or None,
        prompt=(
            classifier_text(planned.req.messages, "AllUserMessages", 100_000)
            if config.observability.log_prompts
            else None
        ),
        **extra,
    )


def account_failure(
    rt: Runtime, state: RouterState, planned: Planned, events: ChainEvents, err: RouterError
) -> DecisionRecord:
    """Record a request no model answered (the client gets ``err``)."""
    elapsed = _now() - planned.started
    labels = (state.config.policy, planned.tier, planned.arm, planned.route.model)
    rt.metrics.requests.labels(
        *labels, mdefs.OUTCOME_ERROR, cluster_label(planned.route.bucket)
    ).inc()
    rt.metrics.request_duration.labels(*labels).observe(elapsed)
    count_slices(rt.metrics, state.config.policy, planned, mdefs.OUTCOME_ERROR)
    count_cell(rt.metrics, state.config.policy, planned, mdefs.OUTCOME_ERROR)
    record = _record(
        state,
        planned,
        events,
        model=None,
        outcome=mdefs.OUTCOME_ERROR,
        status=http_status(err),
        elapsed=elapsed,
        chain=events.errors,
        error=err.code,
        key_source=str(planned.turn.key_source) if planned.turn else None,
        stateful=(planned.turn.stateful or None) if planned.turn else None,
        locked_to=planned.turn.lock.model if planned.turn and planned.turn.lock else None,
    )
    rt.decision_log.write(record.to_json())
    return record


def count_cell(
    m: RouterMetrics, policy: str, planned: Planned, outcome: str, cost_usd: float = 0.0
) -> None:
    """``classifier_cell_*``: the request's cell and decider during a classifier canary."""
    pick = planned.turn.classifier_pick if planned.turn is not None else None
    if pick is None:
        return
    m.child(
        m.classifier_cell_requests, policy, pick.from_tier, pick.to_tier, pick.decider, outcome
    ).inc()
    if cost_usd:
        m.child(m.classifier_cell_cost, policy, pick.from_tier, pick.to_tier, pick.decider).inc(
            cost_usd
        )


def count_slices(m: RouterMetrics, policy: str, planned: Planned, outcome: str) -> None:
    """``slice_requests_total``: the request once per declared slice."""
    cluster = cluster_label(planned.route.bucket)
    for name, value in planned.slices:
        m.slice_requests.labels(
            policy, planned.tier, planned.arm, name, value, outcome, cluster
        ).inc()


def outcome_of(result: ChainResult, delivery: Delivery) -> str:
    """``requests_total{outcome}`` of a served answer: a stream the upstream broke is an
    error (a client leaving is not the model's failure)."""
    if delivery.failed is not None and delivery.failed != CLIENT_DISCONNECTED:
        return mdefs.OUTCOME_ERROR
    return mdefs.OUTCOME_ESCALATED if result.escalated else mdefs.OUTCOME_OK


def account(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    events: ChainEvents,
    result: ChainResult,
    did: str,
    delivery: Delivery,
    *,
    finished: float | None = None,
) -> DecisionRecord:
    """Record a served answer: metrics, tokens and cost, decision log, review sample; and
    start a shadow evaluation if this canary answer is sampled, or a pre-flight mirror
    (:mod:`~tierguard.router.mirroring`) if this baseline answer is. ``finished``: when
    the answer was ready (``loop.time()``; default now)."""
    config = state.config
    m = rt.metrics
    elapsed = (_now() if finished is None else finished) - planned.started
    outcome = outcome_of(result, delivery)
    labels = (config.policy, planned.tier, planned.arm, result.model)
    m.child(m.requests, *labels, outcome, cluster_label(planned.route.bucket)).inc()
    count_slices(m, config.policy, planned, outcome)
    m.child(m.request_duration, *labels).observe(elapsed)
    m.child(m.ttft, *labels).observe(delivery.ttft_s)
    if delivery.failed in mdefs.ERROR_REASONS:  # the stream broke after its first chunk
        m.upstream_errors.labels(config.policy, result.model, delivery.failed).inc()
    usage = usage_cost(state.models[result.model].pricing, delivery.usage)
    if delivery.usage:
        m.child(m.tokens, *labels, mdefs.KIND_PROMPT).inc(usage.prompt_tokens)
        m.child(m.tokens, *labels, mdefs.KIND_COMPLETION).inc(usage.completion_tokens)
        m.child(m.cost, *labels).inc(usage.cost_usd)
    count_cell(m, config.policy, planned, outcome, usage.cost_usd)
    turn_fields: dict[str, Any] = {}
    tokens = {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens}
    if planned.turn is not None:
        served = observe_served(
            m, config.policy, planned.turn, state.ladder, model=result.model, usage=delivery.usage
        )
        turn_fields = {
            "key_source": served.key_source,
            "stateful": served.stateful,
            "locked_to": served.locked_to,
            "tier_fallback_from": served.tier_fallback_from,
            "context_escalation": served.context_escalation,
        }
        if served.cached_tokens is not None:
            tokens["cached"] = served.cached_tokens
    record = _record(
        state,
        planned,
        events,
        model=result.model,
        outcome=outcome,
        status=200,
        elapsed=elapsed,
        chain=[f"{a.model}:{a.result}" for a in result.attempts],
        hedged=result.hedged,
        decision_id=did,
        ttft_s=round(delivery.ttft_s, 4),
        tokens=tokens,
        cost_usd=round(usage.cost_usd, 8),
        error=delivery.failed,
        **turn_fields,
    )
    rt.decision_log.write(record.to_json())
    item: dict[str, Any] = {
        "request_id": planned.request_id,
        "decision_id": did,
        "ts": record.ts,
        "tier": planned.tier,
        "arm": planned.arm,
        "model": result.model,
        "outcome": outcome,
        "probabilities": planned.classification.probabilities,
    }
    if planned.slices:
        item["slices"] = dict(planned.slices)
    if config.observability.log_prompts:
        item["prompt"] = record.prompt
        item["answer"] = delivery.answer
    rt.review.offer(planned.tier, planned.arm, item)
    baseline = planned.route.baseline
    if (
        outcome == mdefs.OUTCOME_OK
        and delivery.answer  # a tool call has no text to judge
        and baseline is not None
        and rt.shadows_in_flight < MAX_SHADOWS_IN_FLIGHT
        and wants_shadow(state, planned)
    ):
        body = call_builder(state, planned)(baseline).body
        rt.spawn(
            shadow(
                rt,
                state,
                planned,
                result.model,
                delivery.answer,
                body,
                trace=events.trace,
                response_id=did,
            )
        )
    elif (
        outcome == mdefs.OUTCOME_OK
        and delivery.answer
        and result.model == baseline  # served by the baseline itself, not a fallback
        and wants_mirror(state, planned)
    ):
        route = state.routes[planned.tier]
        assert route.candidate is not None
        body = call_builder(state, planned)(route.candidate).body
        try_mirror(rt, state, planned, result.model, delivery.answer, body)
    return record


def _now() -> float:
    return asyncio.get_running_loop().time()


__all__ = [
    "ChainEvents",
    "account",
    "account_failure",
    "call",
    "plan",
    "sign",
    "tool_call_wrapper",
    "wants_mirror",
    "wants_shadow",
]
