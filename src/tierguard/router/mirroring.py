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
from tierguard.router.chat import classifier_text
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
    """Start the mirror in the background, or shed it when the queue is full."""
    if rt.mirrors_in_flight >= MAX_MIRRORS_IN_FLIGHT:
        rt.metrics.preflight_shed.labels(state.config.policy, planned.tier).inc()
        return False
    rt.mirrors_in_flight += 1
    rt.spawn(mirror(rt, state, planned, baseline_model, baseline_answer, candidate_body))
    return True


async def mirror(
    rt: Runtime,
    state: RouterState,
    planned: Planned,
    baseline_model: str,
    baseline_answer: str,
    candidate_body: dict[str, Any],
) -> None:
    """Ask the candidate (non-streaming) and judge its answer against the baseline's.
    ``rt.mirrors_in_flight`` was raised by :func:`try_mirror`; lowered here."""
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
        try:
            payload = (await client.complete(body)).payload
        except asyncio.CancelledError:
            raise
        except Exception:
            # the baseline answered this request and the candidate did not: a loss
            verdict = mdefs.VERDICT_UNANSWERED
            raise
        usage = payload.get("usage")
        cost = usage_cost(client.model.pricing, usage if isinstance(usage, dict) else None)
        spend.labels(policy, planned.tier, mdefs.KIND_MIRROR).inc(cost.cost_usd)
        question = classifier_text(planned.req.messages, "LastUserMessage", 4000)
        token = JUDGE_SPEND.set(judge_costs)
        try:
            verdict = await state.judge.judge(
                question, answer_text(payload), baseline_answer, planned.req.reference
            )
        finally:
            JUDGE_SPEND.reset(token)
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
