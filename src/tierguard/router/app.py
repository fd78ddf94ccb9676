"""The router's aiohttp application: ``create_app(settings)``, its routes, the one error
middleware and thin views.

A chat request is sequenced here and decided elsewhere: :mod:`~tierguard.router.pipeline`
plans, calls and accounts for it, :mod:`~tierguard.router.relay` writes the answer, and
:mod:`~tierguard.router.runtime` owns the process-lifetime resources and config
generations. One middleware renders every failure in OpenAI's error format, so no client
ever sees an HTML error page or a stack trace.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from time import perf_counter

from aiohttp import web

from tierguard.api.traces import EVAL_FEEDBACK
from tierguard.router import decision_id, pipeline, relay
from tierguard.router.accounting import account_soon
from tierguard.router.chat import parse_chat_request, parse_json
from tierguard.router.errors import (
    AuthenticationError,
    DeadlineExceededError,
    FeedbackRejectedError,
    NotReadyError,
    PayloadTooLargeError,
    RateLimitedError,
    RouterError,
    UpstreamFailedError,
    UpstreamRejectedError,
    from_http_status,
    http_status,
)
from tierguard.router.feedback import count_feedback, parse_feedback
from tierguard.router.metrics import RouterMetrics
from tierguard.router.mirrorbudget import BudgetLedger
from tierguard.router.overhead import OVERHEAD_HEADER, Overhead
from tierguard.router.runtime import (
    RUNTIME,
    RouterSettings,
    Runtime,
    apply_config,
    lifecycle,
    reload_text,
)
from tierguard.router.spanattrs import (
    classifier_digest,
    conversation_id,
    evaluation_attributes,
)
from tierguard.router.sse import ChunkRewriter
from tierguard.router.state import RouterState
from tierguard.router.toolcalls import wrap_choices
from tierguard.router.tracing import RequestTrace
from tierguard.router.upstream import JsonAnswer

log = logging.getLogger("tierguard.router")

REQUEST_ID_HEADER = "x-request-id"

__all__ = ["RUNTIME", "RouterSettings", "Runtime", "apply_config", "create_app", "reload_text"]


# --------------------------------------------------------------------------- middleware


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Render every failure as an OpenAI error (the one place that does)."""
    try:
        return await handler(request)
    except RouterError as err:
        return _error_response(request, err)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _error_response(request, from_http_status(exc.status, exc.reason))
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unexpected error serving %s %s", request.method, request.path)
        return _error_response(request, RouterError("The router hit an internal error."))


def _error_response(request: web.Request, err: RouterError) -> web.Response:
    rt = request.app[RUNTIME]
    status = http_status(err)
    if 400 <= status < 500 and err.client_fault:
        policy = rt.state.config.policy if rt.state else ""
        rt.metrics.invalid_requests.labels(policy, err.code).inc()
    return web.json_response(err.body(), status=status, headers=err.headers)


# --------------------------------------------------------------------------- helpers


def _state(request: web.Request) -> RouterState:
    state = request.app[RUNTIME].state
    if state is None:
        raise NotReadyError("The router has not loaded its configuration yet.")
    return state


def _authorize(request: web.Request, state: RouterState) -> None:
    if not state.client_keys:
        return
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    # surrogatepass: header bytes that are not UTF-8 arrive as surrogate escapes; such a
    # key simply does not match (never an encoding error)
    presented = token.strip().encode("utf-8", "surrogatepass")
    ok = scheme.lower() == "bearer" and any(
        hmac.compare_digest(presented, k.encode("utf-8", "surrogatepass"))
        for k in state.client_keys
    )
    if not ok:
        raise AuthenticationError(
            "Incorrect or missing API key. Send it as 'Authorization: Bearer <key>'."
        )


async def _read_body(request: web.Request, limit: int) -> bytes:
    too_big = PayloadTooLargeError(f"The request body is larger than the limit of {limit} bytes.")
    if request.content_length is not None and request.content_length > limit:
        raise too_big
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.content.iter_any():
        total += len(chunk)
        if total > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


def _request_id(request: web.Request) -> str:
    rid = request.headers.get(REQUEST_ID_HEADER, "")
    if 0 < len(rid) <= 128 and rid.isprintable():
        return rid
    return uuid.uuid4().hex


# --------------------------------------------------------------------------- views


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """``POST /v1/chat/completions``: plan → call → relay → account, in a SERVER span
    when tracing is on (:mod:`~tierguard.router.tracing`)."""
    rt = request.app[RUNTIME]
    if rt.tracing is None:
        return await _chat(request, rt, None)
    trace = rt.tracing.start_request(request.headers, request.path)
    try:
        response = await _chat(request, rt, trace)
    except RouterError as err:
        trace.finish(http_status(err), err.code)
        raise
    except web.HTTPException as exc:
        trace.finish(exc.status, str(exc.status) if exc.status >= 400 else None)
        raise
    except BaseException as exc:
        error = type(exc).__qualname__ if isinstance(exc, Exception) else "cancelled"
        trace.finish(500, error)
        raise
    trace.finish(response.status)
    return response


async def _chat(
    request: web.Request, rt: Runtime, trace: RequestTrace | None
) -> web.StreamResponse:
    """The request's path. The router's own time is measured per phase around the awaits
    on upstreams and on the client's body (:mod:`~tierguard.router.overhead`)."""
    t0 = perf_counter()
    started = asyncio.get_running_loop().time()
    wall_start = time.time()
    state = _state(request)
    config = state.config
    ovh = Overhead()
    _authorize(request, state)
    # the body is usually in aiohttp's buffer already; a slow upload counts as parse
    req = parse_chat_request(await _read_body(request, config.server.max_body_bytes))
    t1 = perf_counter()
    request_id = _request_id(request)
    if trace is not None:
        trace.parsed(
            model=req.model,
            stream=req.stream,
            messages=req.messages,
            policy=config.policy,
            revision=config.revision,
            request_id=request_id,
        )
    planned = pipeline.plan(
        state,
        req,
        request_id=request_id,
        stickiness_header=request.headers.get(config.stickiness.header),
        metrics=rt.metrics,
        started=started,
        wall_start=wall_start,
        headers=request.headers,
    )
    t2 = perf_counter()
    ovh.parse = t1 - t0
    ovh.classify = planned.classify_s
    ovh.route = t2 - t1 - planned.classify_s
    if trace is not None:
        trace.planned(
            tier=planned.tier,
            arm=planned.arm,
            tier_source=planned.classification.source,
            conversation=conversation_id(
                config.salt, planned.turn.session_key if planned.turn else None
            ),
            classifier=classifier_digest(state.classifier.model_sha256),
        )
    events = pipeline.ChainEvents(rt.metrics, config.policy, planned, trace)
    try:
        result = await pipeline.call(state, planned, events, ovh)
    except (
        UpstreamFailedError,
        DeadlineExceededError,
        UpstreamRejectedError,
        RateLimitedError,
    ) as err:
        t3 = perf_counter()
        pipeline.account_failure(rt, state, planned, events, err)
        ovh.write = perf_counter() - t3
        ovh.observe(rt.metrics.overhead_phases(config.policy))
        raise
    t3 = perf_counter()
    did = pipeline.sign(state, planned, result.model)
    headers = {
        REQUEST_ID_HEADER: planned.request_id,
        "x-tierguard-tier": planned.tier,
        "x-tierguard-arm": planned.arm,
        "x-tierguard-model": result.model,
    }
    response: web.StreamResponse
    wrap_id = pipeline.tool_call_wrapper(state, planned, result.model)
    if isinstance(result.answer, JsonAnswer):
        if wrap_id is not None:
            wrap_choices(result.answer.payload, "message", wrap_id)
        response, delivery = relay.json_response(result.answer, headers, did, req.model, started)
        ovh.write = perf_counter() - t3
        if config.observability.overhead_header:
            response.headers[OVERHEAD_HEADER] = ovh.header_value()
    else:
        collect = (
            config.observability.log_prompts
            or pipeline.wants_shadow(state, planned)
            or pipeline.wants_mirror(state, planned)
            or (trace is not None and trace.capture_content)
        )
        rewriter = ChunkRewriter(did, req.model, req.include_usage, collect, wrap_id=wrap_id)
        ovh.write = perf_counter() - t3
        if config.observability.overhead_header:
            headers[OVERHEAD_HEADER] = ovh.header_value()
        response, delivery = await relay.stream_response(
            request, result.answer, headers, rewriter, started, planned.deadline
        )
        ovh.write += delivery.rewrite_s
    t4 = perf_counter()
    if trace is not None:
        trace.delivered(
            response_id=did,
            response_model=state.models[result.model].upstream_model,
            usage=delivery.usage,
            answer=delivery.answer,
            failed=delivery.failed,
        )
    if isinstance(result.answer, JsonAnswer):  # written when this view returns
        ovh.write += perf_counter() - t4
        account_soon(rt, state, planned, events, result, did, delivery, ovh)
        return response
    pipeline.account(rt, state, planned, events, result, did, delivery)
    ovh.write += perf_counter() - t4
    ovh.observe(rt.metrics.overhead_phases(config.policy))
    return response


async def feedback(request: web.Request) -> web.Response:
    """``POST /v1/feedback {"id": <response id>, "rating": "up"|"down"}``."""
    rt = request.app[RUNTIME]
    state = _state(request)
    _authorize(request, state)
    did, rating = parse_feedback(
        parse_json(await _read_body(request, state.config.server.max_body_bytes))
    )
    policy = state.config.policy
    try:
        decision = decision_id.verify(
            did, state.signing_key, now=time.time(), ttl_s=state.feedback_ttl_s
        )
        if decision.policy != policy:
            raise decision_id.DecisionIdError("wrong_policy", "the id was issued by another policy")
    except decision_id.DecisionIdError as exc:
        rt.metrics.feedback_rejected.labels(policy, exc.reason).inc()
        raise FeedbackRejectedError(
            f"Feedback refused: {exc}.", param="id", code=f"feedback_{exc.reason}"
        ) from None
    count_feedback(rt.metrics, state.config.slices, decision, rating)
    if rt.tracing is not None:
        rt.tracing.evaluation(
            parent=rt.tracing.recall(decision.request_id),
            attributes=evaluation_attributes(name=EVAL_FEEDBACK, label=rating, response_id=did),
            headers=request.headers,
        )
    rt.decision_log.write(
        {
            "ts": round(time.time(), 3),
            "type": "feedback",
            "request_id": decision.request_id,
            "policy": decision.policy,
            "tier": decision.tier,
            "arm": decision.arm,
            "model": decision.model,
            "rating": rating,
        }
    )
    return web.json_response(
        {
            "object": "feedback",
            "id": did,
            "status": "accepted",
            "tier": decision.tier,
            "arm": decision.arm,
            "rating": rating,
        }
    )


async def list_models(request: web.Request) -> web.Response:
    state = _state(request)
    _authorize(request, state)
    created = 0
    data = [{"id": "auto", "object": "model", "created": created, "owned_by": "tierguard"}]
    data += [
        {"id": name, "object": "model", "created": created, "owned_by": "tierguard"}
        for name in state.models
    ]
    return web.json_response({"object": "list", "data": data})


async def metrics_view(request: web.Request) -> web.Response:
    body = request.app[RUNTIME].metrics.exposition()
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4"})


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[RUNTIME].state
    if state is None:
        raise NotReadyError("Configuration or classifier not loaded yet.")
    return web.json_response(
        {"status": "ready", "policy": state.config.policy, "revision": state.config.revision}
    )


async def review_sample(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    _authorize(request, _state(request))
    return web.Response(text=rt.review.export_jsonl(), content_type="application/x-ndjson")


# --------------------------------------------------------------------------- app


def create_app(settings: RouterSettings) -> web.Application:
    """The router app. Config is loaded in the app's startup (cleanup_ctx); until then
    ``/readyz`` answers 503."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1 << 30)
    app[RUNTIME] = Runtime(
        settings=settings,
        metrics=RouterMetrics(),
        mirror_budget=BudgetLedger(settings.budget_ledger),
    )
    app.cleanup_ctx.append(lifecycle)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/admin/review-sample", review_sample)
    return app
