"""Pre-flight mirroring (``TierSplit.mirrorRate`` > 0, set by the operator only while a
revision's pre-flight runs): the request was served by the baseline; for a sample of
them the candidate is asked the same question in the background and the pairwise judge
compares the two answers. The user never sees the candidate's answer and never waits
for it.

* **Sampling** by the stickiness key's bucket (a whole session is in or out, so the
  per-cluster design effect of the gate applies), at the tier's rate; a hash of the
  bucket apart from the canary split's (which is at weight 0 during pre-flight anyway).
* **Only stateless requests**: the newest message is the user's, no tool call or tool
  result anywhere in the conversation, no ``previous_response_id`` (stored
  conversation): a candidate cannot be asked to continue a conversation it never had.
* **Non-streaming** calls; a pairwise judge only (the operator renders mirror rates only
  for a policy whose judge is Pairwise; another judge is never asked).
* **Bounded**: at most :data:`MAX_MIRRORS_IN_FLIGHT` mirrors at once per process; a
  sampled request beyond it is shed (``preflight_shed_total``), so mirrored work never
  queues up behind or slows the primary path.
* **Within budget, in flight included** (:mod:`tierguard.router.mirrorbudget`): the
  candidate call's worst-case cost is reserved against this process's share of the
  budget before it starts, the judge's before it is asked; a reservation that does not
  fit sheds the mirror (``preflight_shed_total``; a judge refused is ``error``), so
  ``maxSpendUSD`` is a hard bound, not a target the operator stops near.
* **Counted**: ``shadow_pairwise_total{arm="mirror"}`` (the verdict; a judge failure is
  ``error``, missing data; the candidate failing to answer -- error, timeout -- is
  ``unanswered``, a loss: the baseline answered the same request),
  ``preflight_spend_usd_total{kind="mirror"|"judge"}`` (from the policy's
  prices), and a ``"type": "mirror"`` decision-log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from tierguard.api import metrics as mdefs
from tierguard.api.enums import Arm
from tierguard.api.policy import Pricing
from tierguard.router.chat import classifier_text
from tierguard.router.mirrorbudget import MirrorBudget, candidate_bound, judge_bound, output_limit
from tierguard.router.pairwise import PAIRWISE_PROMPT, pairwise_prompt
from tierguard.router.records import Planned, usage_cost
from tierguard.router.runtime import Runtime
from tierguard.router.shadow import answer_text
from tierguard.router.split import BUCKETS, bucket, cluster_label
from tierguard.router.state import RouterState
from tierguard.router.upstream import JUDGE_SPEND

log = logging.getLogger("tierguard.router")

#: mirrors running at once per process; beyond it a sampled request is shed
MAX_MIRRORS_IN_FLIGHT = 32


def stateless(planned: Planned) -> bool:
    """A request the candidate can answer on its own: the user spoke last, no tool
    traffic in the conversation, no stored conversation referenced."""
    if planned.turn is None or planned.turn.stateful:
        return False
    if planned.req.body.get("previous_response_id") is not None:
        return False
    for msg in planned.req.messages:
        if msg.get("role") == "tool" or msg.get("tool_calls"):
            return False
    return True


def sampled(key_bucket: int, rate: float) -> bool:
    """Whether a session (its stickiness bucket) is mirrored at ``rate``."""
    return bucket("mirror:", str(key_bucket)) < round(rate * BUCKETS)


def wants_mirror(state: RouterState, planned: Planned) -> bool:
    """Whether this baseline-served request is mirrored to its tier's candidate (decided
    before the answer is read, so a stream knows to keep its text)."""
    if planned.route.arm is not Arm.CONTROL or planned.route.bucket is None:
        return False
    rate = state.config.weight(planned.tier).mirror_rate
    route = state.routes.get(planned.tier)
    return (
        rate > 0
        and route is not None
        and route.candidate is not None
        and state.judge.pairwise
        and state.judge_ready
        and sampled(planned.route.bucket, rate)
        and stateless(planned)
    )


def try_mirror(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    baseline_model: str,
    baseline_answer: str,
    candidate_body: dict[str, Any],
) -> bool:
    """Start the mirror in the background, or shed it when the queue is full or the
    candidate call's worst-case cost does not fit in this process's budget."""
    budget = rt.mirror_budget.budget
    route = state.routes[planned.tier]
    assert route.candidate is not None
    reserved = 0.0
    if rt.mirrors_in_flight < MAX_MIRRORS_IN_FLIGHT and budget is not None:
        pricing = state.pool.clients[route.candidate].model.pricing
        reserved = candidate_bound(pricing, candidate_body)
    if rt.mirrors_in_flight >= MAX_MIRRORS_IN_FLIGHT or (
        budget is not None and not budget.try_reserve(reserved)
    ):
        rt.metrics.preflight_shed.labels(state.config.policy, planned.tier).inc()
        return False
    rt.mirrors_in_flight += 1
    rt.spawn(
        mirror(
            rt,
            state,
            planned,
            baseline_model,
            baseline_answer,
            candidate_body,
            budget=budget,
            reserved=reserved,
        )
    )
    return True


def _judge_pricing(state: RouterState) -> Pricing | None:
    name = state.config.shadow.judge.model
    return state.pool.clients[name].model.pricing if name is not None else None


async def mirror(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    baseline_model: str,
    baseline_answer: str,
    candidate_body: dict[str, Any],
    *,
    budget: MirrorBudget | None = None,
    reserved: float = 0.0,
) -> None:
    """Ask the candidate (non-streaming) and judge its answer against the baseline's.
    ``rt.mirrors_in_flight`` was raised by :func:`try_mirror`; lowered here. ``reserved``
    (USD, against ``budget``) is the candidate call's bound, settled here; the judge's
    bound is reserved before it is asked."""
    policy = state.config.policy
    route = state.routes[planned.tier]
    candidate = route.candidate
    assert candidate is not None
    verdict = mdefs.VERDICT_ERROR
    spend = rt.metrics.preflight_spend
    judge_costs: list[float] = []
    try:
        client = state.pool.clients[candidate]
        body = dict(candidate_body)
        body["stream"] = False
        body.pop("stream_options", None)
        limit = output_limit(body)  # the bound the reservation counted on
        if "max_completion_tokens" in body:
            body["max_completion_tokens"] = limit
        else:
            body["max_tokens"] = limit
        try:
            payload = (await client.complete(body)).payload
        except asyncio.CancelledError:
            raise
        except Exception:
            # the baseline answered this request and the candidate did not: a loss (its
            # reservation stays committed: a provider may bill a call that failed here)
            verdict = mdefs.VERDICT_UNANSWERED
            raise
        usage = payload.get("usage")
        cost = usage_cost(client.model.pricing, usage if isinstance(usage, dict) else None)
        if budget is not None:
            budget.settle(reserved, cost.cost_usd)
        spend.labels(policy, planned.tier, mdefs.KIND_MIRROR).inc(cost.cost_usd)
        question = classifier_text(planned.req.messages, "LastUserMessage", 4000)
        answer = answer_text(payload)
        judge_reserved = 0.0
        pricing = _judge_pricing(state)
        if budget is not None and pricing is not None:
            template = getattr(state.judge, "template", PAIRWISE_PROMPT)
            ref = planned.req.reference
            judge_reserved = judge_bound(
                pricing,
                [
                    pairwise_prompt(question, answer, baseline_answer, ref, template),
                    pairwise_prompt(question, baseline_answer, answer, ref, template),
                ],
            )
            if not budget.try_reserve(judge_reserved):
                rt.metrics.preflight_shed.labels(policy, planned.tier).inc()
                return  # verdict error: missing data, never a loss
        token = JUDGE_SPEND.set(judge_costs)
        try:
            verdict = await state.judge.judge(
                question, answer, baseline_answer, planned.req.reference
            )
        finally:
            JUDGE_SPEND.reset(token)
            if budget is not None:
                # a judge call that failed may have been billed: it keeps its bound
                failed = len(judge_costs) < 2
                budget.settle(judge_reserved, judge_reserved if failed else sum(judge_costs))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("pre-flight mirror failed: %s", exc)
    finally:
        rt.mirrors_in_flight -= 1
        if judge_costs:
            spend.labels(policy, planned.tier, mdefs.KIND_JUDGE).inc(sum(judge_costs))
        rt.metrics.shadow_pairwise.labels(
            policy,
            planned.tier,
            Arm.MIRROR.value,
            candidate,
            verdict,
            cluster_label(planned.route.bucket),
        ).inc()
        rt.decision_log.write(
            {
                "ts": round(time.time(), 3),
                "type": "mirror",
                "request_id": planned.request_id,
                "policy": policy,
                "tier": planned.tier,
                "arm": Arm.MIRROR.value,
                "model": candidate,
                "baseline": baseline_model,
                "judge": "pairwise",
                "verdict": verdict,
            }
        )
