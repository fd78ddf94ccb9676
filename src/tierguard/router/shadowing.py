"""Shadow evaluation of a served canary answer: which requests are sampled, and the
background task that asks the baseline the same question and has the judge compare the
two answers (the judges themselves are :mod:`tierguard.router.shadow`). The client never
waits for it; a failed call or judge is verdict ``error``, never a quality signal. Each
judgement is counted (``shadow_judgements_total``, or ``shadow_pairwise_total`` for the
pairwise judge) and written to the decision log as a ``"type": "shadow"`` line carrying
the request id and the verdict."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tierguard.api import metrics as mdefs
from tierguard.api import traces
from tierguard.api.enums import Arm
from tierguard.router import spanattrs
from tierguard.router.chat import classifier_text
from tierguard.router.records import Planned, usage_cost
from tierguard.router.runtime import Runtime
from tierguard.router.shadow import answer_text, should_shadow
from tierguard.router.split import cluster_label
from tierguard.router.state import RouterState
from tierguard.router.tracing import RequestTrace
from tierguard.router.upstream import JUDGE_HEADERS

log = logging.getLogger("tierguard.router")

#: shadow calls running at once per process; beyond it a sampled answer is not shadowed
MAX_SHADOWS_IN_FLIGHT = 64


def wants_shadow(state: RouterState, planned: Planned) -> bool:
    """Whether this request's canary answer is compared with the baseline's (decided
    before the answer is read, so a stream knows to keep its text). Not for a turn without
    new user text: the baseline did not issue its tool calls and would refuse them."""
    return (
        planned.route.arm is Arm.CANARY
        and state.judge_ready
        and not (planned.turn is not None and planned.turn.stateful)
        and planned.route.baseline is not None
        and should_shadow(planned.request_id, state.config.shadow.sample_rate)
    )


async def shadow(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    canary_model: str,
    canary_answer: str,
    baseline_body: dict[str, Any],
    *,
    trace: RequestTrace | None = None,
    response_id: str = "",
) -> None:
    """Ask the baseline the same question (``baseline_body``: what this request would
    have sent it; sent non-streaming) and judge the pair. With tracing, the shadow call
    and an LLM judge's call are CLIENT spans of the request's trace and the verdict a
    ``gen_ai.evaluation.result`` event on the answer ``response_id``
    (:mod:`~tierguard.router.tracing`)."""
    baseline = planned.route.baseline
    assert baseline is not None
    rt.shadows_in_flight += 1
    policy = state.config.policy
    verdict = mdefs.VERDICT_ERROR
    try:
        client = state.pool.clients[baseline]
        body = dict(baseline_body)
        body["stream"] = False
        body.pop("stream_options", None)
        if trace is None:
            payload = (await client.complete(body)).payload
        else:
            with trace.call_span(traces.CALL_SHADOW, client) as (span, headers):
                payload = (await client.complete(body, headers)).payload
                span.set_attributes(spanattrs.response_attributes(payload))
        usage = payload.get("usage")
        cost = usage_cost(client.model.pricing, usage if isinstance(usage, dict) else None)
        rt.metrics.shadow_cost.labels(policy, planned.tier, baseline).inc(cost.cost_usd)
        question = classifier_text(planned.req.messages, "LastUserMessage", 4000)
        verdict = await _judge(
            state, trace, question, canary_answer, answer_text(payload), planned.req.reference
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("shadow evaluation failed: %s", exc)
    finally:
        rt.shadows_in_flight -= 1
        pairwise = state.judge.pairwise
        counter = rt.metrics.shadow_pairwise if pairwise else rt.metrics.shadow_judgements
        counter.labels(
            policy,
            planned.tier,
            planned.arm,
            canary_model,
            verdict,
            cluster_label(planned.route.bucket),
        ).inc()
        if not pairwise:
            for name, value in planned.slices:
                rt.metrics.slice_shadow_judgements.labels(
                    policy,
                    planned.tier,
                    planned.arm,
                    name,
                    value,
                    verdict,
                    cluster_label(planned.route.bucket),
                ).inc()
        rt.decision_log.write(
            {
                "ts": round(time.time(), 3),
                "type": "shadow",
                "request_id": planned.request_id,
                "policy": policy,
                "tier": planned.tier,
                "arm": planned.arm,
                "model": canary_model,
                "baseline": baseline,
                "judge": "pairwise" if pairwise else "agreement",
                "verdict": verdict,
            }
        )
        if trace is not None:
            trace.evaluation(
                label=verdict,
                response_id=response_id,
                explanation=_explanation(state, verdict, canary_model, baseline),
            )


async def _judge(
    state: RouterState,
    trace: RequestTrace | None,
    question: str,
    candidate: str,
    baseline: str,
    reference: str | None = None,
) -> str:
    """The judge's verdict; an LLM judge's calls in a CLIENT span (both of a pairwise
    judge's calls carry its traceparent, through ``JUDGE_HEADERS``)."""
    spec = state.config.shadow.judge
    if trace is None or spec.type != "LLM" or spec.model not in state.pool.clients:
        return await state.judge.judge(question, candidate, baseline, reference)
    with trace.call_span(traces.CALL_JUDGE, state.pool.clients[spec.model]) as (span, headers):
        token = JUDGE_HEADERS.set(headers)
        try:
            verdict = await state.judge.judge(question, candidate, baseline, reference)
        finally:
            JUDGE_HEADERS.reset(token)
        if verdict == mdefs.VERDICT_ERROR:
            span.set_attribute(traces.ERROR_TYPE, "judge_error")
    return verdict


def _explanation(state: RouterState, verdict: str, canary: str, baseline: str) -> str:
    """A verdict's ``gen_ai.evaluation.explanation``: which judge compared what (never
    the answers themselves)."""
    if verdict == mdefs.VERDICT_ERROR:
        return f"no verdict: the shadow call to {baseline} or the judge failed"
    spec = state.config.shadow.judge
    if spec.type == "LLM":
        judge = f"{'pairwise ' if state.judge.pairwise else ''}LLM judge {spec.model}"
    else:
        judge = f"similarity judge (threshold {spec.threshold:g})"
    return f"{judge} compared {canary}'s answer with baseline {baseline}'s: {verdict}"
