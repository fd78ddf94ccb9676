"""The call step of a chat request (see :mod:`tierguard.router.pipeline`): the bodies
sent to each model of the chain, running the chain with a :class:`ChainEvents` observer
that turns attempts into metrics (and, with tracing, into spans), and how the answer is
signed and its tool-call ids wrapped for the client."""

from __future__ import annotations

from collections.abc import Callable

from tierguard.router import decision_id
from tierguard.router.chain import ChainResult, run_chain
from tierguard.router.chat import render_system_prompt, upstream_body
from tierguard.router.metrics import RouterMetrics
from tierguard.router.overhead import Overhead, timed_builder
from tierguard.router.records import Planned
from tierguard.router.split import cluster_label
from tierguard.router.state import RouterState
from tierguard.router.toolcalls import Lock
from tierguard.router.toolcalls import wrap as wrap_tool_call_id
from tierguard.router.tracing import RequestTrace
from tierguard.router.upstream import UpstreamCall


class ChainEvents:
    """Chain events → metrics, plus what the decision log says about the attempts."""

    __slots__ = ("arm", "errors", "escalations", "m", "policy", "tier", "trace")

    def __init__(
        self, m: RouterMetrics, policy: str, planned: Planned, trace: RequestTrace | None = None
    ) -> None:
        self.m, self.policy, self.tier, self.arm = m, policy, planned.tier, planned.arm
        self.escalations: list[str] = []
        self.errors: list[str] = []
        #: the request's spans (None: tracing off)
        self.trace = trace

    def on_error(self, model: str, reason: str) -> None:
        self.errors.append(f"{model}:{reason}")
        self.m.upstream_errors.labels(self.policy, model, reason).inc()

    def on_escalate(self, from_model: str, to_model: str, reason: str) -> None:
        self.escalations.append(f"{from_model}->{to_model}:{reason}")
        if self.trace is not None:
            self.trace.on_escalate(reason)
        self.m.escalations.labels(
            self.policy, self.tier, self.arm, from_model, to_model, reason
        ).inc()

    def on_hedge(self, outcome: str) -> None:
        self.m.hedges.labels(self.policy, self.tier, self.arm, outcome).inc()


def call_builder(state: RouterState, planned: Planned) -> Callable[[str], UpstreamCall]:
    """``model name → what to send it`` for this request: the model's upstream id and
    system prompt applied; for a streaming call to a model with ``streamUsage``, the
    usage request added (and the body without it kept, should the model refuse it)."""
    req = planned.req

    def call_for(name: str) -> UpstreamCall:
        model = state.models[name]
        system = (
            render_system_prompt(model.system_prompt, name, planned.tier)
            if model.system_prompt
            else None
        )
        add = req.stream and model.stream_usage and not req.include_usage
        body = upstream_body(req, model.upstream_model, system, add_usage=add)
        plain = upstream_body(req, model.upstream_model, system, add_usage=False)
        return UpstreamCall(body, plain if add else None)

    return call_for


async def call(
    state: RouterState, planned: Planned, events: ChainEvents, overhead: Overhead | None = None
) -> ChainResult:
    """Serve the request from its chain. Raises the chain's :class:`RouterError` when no
    model gave an answer. Building each upstream body counts as ``overhead.route``."""
    trace = events.trace
    result = await run_chain(
        planned.route.chain,
        state.pool,
        timed_builder(call_builder(state, planned), overhead),
        stream=planned.req.stream,
        budget_s=planned.route.latency_budget_s,
        deadline=planned.deadline,
        observer=events,
        runner=trace.attempt if trace is not None else None,
    )
    if trace is not None:
        trace.chain_done(result.index, result.answer)
    return result


def tool_call_wrapper(
    state: RouterState, planned: Planned, model: str
) -> Callable[[str], str] | None:
    """How the tool-call ids of this answer are rewritten for the client: routed answers
    carry their route in them (:mod:`~tierguard.router.toolcalls`) so the tool results
    come back to the same model on any replica; a pinned request already names its model."""
    if planned.turn is None:
        return None
    lock = Lock(model, planned.tier, planned.arm)
    key = state.signing_key
    return lambda upstream_id: wrap_tool_call_id(upstream_id, lock, key)


def sign(state: RouterState, planned: Planned, model: str) -> str:
    """The signed decision id the client sees as the response ``id``."""
    return decision_id.sign(
        decision_id.Decision(
            state.config.policy,
            planned.tier,
            planned.arm,
            model,
            int(planned.wall_start),
            planned.request_id,
            cluster_label(planned.route.bucket),
            planned.slices,
            (
                planned.turn.classifier_pick.as_list()
                if planned.turn is not None and planned.turn.classifier_pick is not None
                else ()
            ),
        ),
        state.signing_key,
    )
