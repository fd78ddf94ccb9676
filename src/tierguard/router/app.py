"""The router's aiohttp application: ``create_app(settings)``.

Views are thin: they read the body, call pure functions (``chat``, ``split``,
``decision_id``) and the I/O helpers (``upstream``), and record what happened (metrics,
decision log, review sample, shadow). One middleware renders every failure in OpenAI's
error format, so no client ever sees an HTML error page or a stack trace.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tierguard.api import metrics as mdefs
from tierguard.api.durations import parse_duration
from tierguard.api.enums import Arm
from tierguard.api.routerconfig import RouterConfig
from tierguard.router import decision_id
from tierguard.router.chat import (
    ChatRequest,
    classifier_text,
    parse_chat_request,
    parse_json,
    render_system_prompt,
    upstream_body,
)
from tierguard.router.config_source import ConfigSource, parse_config
from tierguard.router.decision_log import DecisionLog, hash_user
from tierguard.router.errors import (
    AuthenticationError,
    DeadlineExceededError,
    FeedbackRejectedError,
    InvalidRequestError,
    ModelNotFoundError,
    NotReadyError,
    PayloadTooLargeError,
    RouterError,
    UpstreamFailedError,
    UpstreamRejectedError,
    from_http_status,
    http_status,
)
from tierguard.router.metrics import RouterMetrics
from tierguard.router.review import ReviewSample
from tierguard.router.shadow import answer_text, should_shadow
from tierguard.router.split import RoutePlan, bucket, plan_pinned, plan_routed, stickiness_key
from tierguard.router.sse import ChunkRewriter
from tierguard.router.state import RouterState, build_state
from tierguard.router.upstream import (
    JsonAnswer,
    StreamAnswer,
    UpstreamClient,
    close_clients,
    run_chain,
)

log = logging.getLogger("tierguard.router")

REQUEST_ID_HEADER = "x-request-id"
MAX_SHADOWS_IN_FLIGHT = 64
CLIENT_DISCONNECTED = "client_disconnected"


@dataclass
class RouterSettings:
    """How to start: an initial config and/or a source to load and watch."""

    config: RouterConfig | None = None
    source: ConfigSource | None = None
    review_flush_interval_s: float = 60.0


@dataclass
class Runtime:
    """Process-lifetime resources (one per app); the config generation is ``state``."""

    settings: RouterSettings
    metrics: RouterMetrics
    state: RouterState | None = None
    decision_log: DecisionLog = field(default_factory=lambda: DecisionLog(None))
    review: ReviewSample = field(default_factory=lambda: ReviewSample(0))
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    shadows_in_flight: int = 0
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)


RUNTIME: web.AppKey[Runtime] = web.AppKey("runtime", Runtime)


# --------------------------------------------------------------------------- config


async def apply_config(rt: Runtime, config: RouterConfig) -> None:
    """Swap in a new generation. Raises on failure (the old one stays)."""
    async with rt.reload_lock:
        previous = rt.state
        state, retired = await build_state(config, previous)
        rt.state = state
        _sync_observability(rt, config, previous.config if previous else None)
        rt.metrics.canary_weight.clear()
        for r in config.routes:
            rt.metrics.canary_weight.labels(config.policy, r.tier).set(
                config.weight(r.tier).weight if r.candidate else 0.0
            )
        if retired:  # let in-flight requests of the old generation finish first
            rt.spawn(_close_later(retired, state.deadline_s + 5))


async def _close_later(clients: list[UpstreamClient], delay: float) -> None:
    await asyncio.sleep(delay)
    await close_clients(clients)


def _sync_observability(rt: Runtime, new: RouterConfig, old: RouterConfig | None) -> None:
    obs = new.observability
    if old is None or old.observability.decision_log != obs.decision_log:
        rt.decision_log.close()
        rt.decision_log = DecisionLog(obs.decision_log)
    if old is None or old.observability.review_sample_size != obs.review_sample_size:
        rt.review = ReviewSample(obs.review_sample_size)
    if old is not None:
        new_b = {parse_duration(d) for d in obs.latency_objectives}
        old_b = {parse_duration(d) for d in old.observability.latency_objectives}
        if new_b != old_b:
            log.warning(
                "observability.latencyObjectives changed; histogram buckets only change on restart"
            )
        if (new.server.host, new.server.port) != (old.server.host, old.server.port):
            log.warning("server.host/port changed; takes effect on restart")


async def reload_text(rt: Runtime, text: str) -> bool:
    """Apply new config text from a source; an invalid one is refused, counted and logged."""
    policy = rt.state.config.policy if rt.state else ""
    try:
        config = parse_config(text)
        await apply_config(rt, config)
    except Exception as exc:
        rt.metrics.config_reloads.labels(policy, mdefs.RELOAD_ERROR).inc()
        log.error("config reload refused, keeping the active config: %s", exc)
        return False
    rt.metrics.config_reloads.labels(config.policy, mdefs.RELOAD_OK).inc()
    log.info(
        "config reloaded: policy %s revision %r, split %s",
        config.policy,
        config.revision,
        [(s.tier, s.weight, str(s.control_arm)) for s in config.split],
    )
    return True


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
    if 400 <= status < 500 and not isinstance(err, UpstreamRejectedError | FeedbackRejectedError):
        policy = rt.state.config.policy if rt.state else ""
        rt.metrics.invalid_requests.labels(policy, err.code).inc()
    return web.json_response(err.body(), status=status)


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
    ok = scheme.lower() == "bearer" and any(
        hmac.compare_digest(token.strip().encode(), k.encode()) for k in state.client_keys
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


class _Observer:
    """Chain events → metrics (and a record for the decision log)."""

    __slots__ = ("arm", "escalations", "m", "policy", "tier")

    def __init__(self, m: RouterMetrics, policy: str, tier: str, arm: str) -> None:
        self.m, self.policy, self.tier, self.arm = m, policy, tier, arm
        self.escalations: list[str] = []

    def on_error(self, model: str, reason: str) -> None:
        self.m.upstream_errors.labels(self.policy, model, reason).inc()

    def on_escalate(self, from_model: str, to_model: str, reason: str) -> None:
        self.escalations.append(f"{from_model}->{to_model}:{reason}")
        self.m.escalations.labels(
            self.policy, self.tier, self.arm, from_model, to_model, reason
        ).inc()

    def on_hedge(self, outcome: str) -> None:
        self.m.hedges.labels(self.policy, self.tier, self.arm, outcome).inc()


def plan_request(
    state: RouterState, req: ChatRequest, request: web.Request, request_id: str, m: RouterMetrics
) -> tuple[RoutePlan, dict[str, float] | None]:
    """Classify and split (or pin). Returns the plan and the tier probabilities."""
    config = state.config
    if req.model in state.routed_names:
        text = classifier_text(
            req.messages, config.classifier.input, config.classifier.max_input_chars
        )
        started = time.perf_counter()
        try:
            result = state.classifier.classify(text)
            tier, probabilities = result.tier, result.probabilities
        except Exception:  # never fail a request on the classifier: use the catch-all tier
            log.exception("classifier failed; routing to the catch-all tier")
            tier, probabilities = config.classifier.tiers[-1].name, None
        m.classifier_duration.labels(config.policy).observe(time.perf_counter() - started)
        route = state.routes[tier]
        key = stickiness_key(
            config.stickiness, req.user, request.headers.get(config.stickiness.header), request_id
        )
        plan = plan_routed(
            route, config.weight(route.tier), bucket(config.salt, key), state.budgets[route.tier]
        )
        return plan, probabilities
    if req.model in state.models:
        return plan_pinned(req.model, state.deadline_s), None
    raise ModelNotFoundError(
        f"The model '{req.model}' does not exist. Use 'auto' (routed) or one of: "
        f"{', '.join(sorted(state.models))}.",
        param="model",
    )


# --------------------------------------------------------------------------- views


async def chat_completions(request: web.Request) -> web.StreamResponse:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    wall0 = time.time()
    rt = request.app[RUNTIME]
    state = _state(request)
    config = state.config
    _authorize(request, state)
    req = parse_chat_request(await _read_body(request, config.server.max_body_bytes))
    request_id = _request_id(request)
    m = rt.metrics
    plan, probabilities = plan_request(state, req, request, request_id, m)
    policy = config.policy
    observer = _Observer(m, policy, plan.tier, str(plan.arm))
    record: dict[str, Any] = {
        "ts": round(wall0, 3),
        "request_id": request_id,
        "user_hash": hash_user(config.salt, req.user),
        "policy": policy,
        "revision": config.revision,
        "tier": plan.tier,
        "probabilities": probabilities,
        "bucket": plan.bucket,
        "arm": str(plan.arm),
        "stream": req.stream,
    }
    if config.observability.log_prompts:
        record["prompt"] = classifier_text(req.messages, "AllUserMessages", 100_000)

    def body_for(name: str) -> dict[str, Any]:
        model = state.models[name]
        system = (
            render_system_prompt(model.system_prompt, name, plan.tier)
            if model.system_prompt
            else None
        )
        return upstream_body(req, model.upstream_model, system, want_usage=True)

    try:
        result = await run_chain(
            plan.chain,
            state.pool,
            body_for,
            stream=req.stream,
            budget_s=plan.latency_budget_s,
            deadline=t0 + state.deadline_s,
            observer=observer,
        )
    except (UpstreamFailedError, DeadlineExceededError, UpstreamRejectedError) as err:
        elapsed = loop.time() - t0
        labels = (policy, plan.tier, str(plan.arm), plan.model)
        m.requests.labels(*labels, mdefs.OUTCOME_ERROR).inc()
        m.request_duration.labels(*labels).observe(elapsed)
        record.update(
            model=None,
            chain=observer.escalations,
            outcome=mdefs.OUTCOME_ERROR,
            status=http_status(err),
            error=err.code,
            latency_s=round(elapsed, 4),
        )
        rt.decision_log.write(record)
        raise
    did = decision_id.sign(
        decision_id.Decision(
            policy, plan.tier, str(plan.arm), result.model, int(wall0), request_id
        ),
        state.signing_key,
    )
    headers = {
        REQUEST_ID_HEADER: request_id,
        "x-tierguard-tier": plan.tier,
        "x-tierguard-arm": str(plan.arm),
        "x-tierguard-model": result.model,
    }
    outcome = mdefs.OUTCOME_ESCALATED if result.escalated else mdefs.OUTCOME_OK
    usage: dict[str, Any] | None
    answer: str | None
    if isinstance(result.answer, JsonAnswer):
        payload = result.answer.payload
        payload["id"] = did
        payload["model"] = req.model
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else None
        answer = answer_text(payload)
        response: web.StreamResponse = web.Response(
            body=json.dumps(payload, separators=(",", ":")).encode(),
            content_type="application/json",
            headers=headers,
        )
        ttft = loop.time() - t0
    else:
        shadowed = plan.arm is Arm.CANARY and should_shadow(request_id, config.shadow.sample_rate)
        collect = config.observability.log_prompts or shadowed
        response, usage, answer, ttft, failed = await _forward_stream(
            request, result.answer, headers, did, req, t0, t0 + state.deadline_s, collect
        )
        if failed:
            record["error"] = failed
            if failed != CLIENT_DISCONNECTED:  # a client leaving is not the model's failure
                outcome = mdefs.OUTCOME_ERROR
    elapsed = loop.time() - t0
    labels = (policy, plan.tier, str(plan.arm), result.model)
    m.requests.labels(*labels, outcome).inc()
    m.request_duration.labels(*labels).observe(elapsed)
    m.ttft.labels(*labels).observe(ttft)
    prompt_tokens = completion_tokens = 0
    cost = 0.0
    if usage:
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or 0)
        pricing = state.models[result.model].pricing
        cost = (
            prompt_tokens * pricing.input_per_million_tokens
            + completion_tokens * pricing.output_per_million_tokens
        ) / 1e6
        m.tokens.labels(*labels, "prompt").inc(prompt_tokens)
        m.tokens.labels(*labels, "completion").inc(completion_tokens)
        m.cost.labels(*labels).inc(cost)
    record.update(
        model=result.model,
        decision_id=did,
        chain=[f"{a.model}:{a.result}" for a in result.attempts],
        escalations=observer.escalations,
        hedged=result.hedged,
        outcome=outcome,
        status=200,
        latency_s=round(elapsed, 4),
        ttft_s=round(ttft, 4),
        tokens={"prompt": prompt_tokens, "completion": completion_tokens},
        cost_usd=round(cost, 8),
    )
    rt.decision_log.write(record)
    item: dict[str, Any] = {
        "request_id": request_id,
        "decision_id": did,
        "ts": record["ts"],
        "tier": plan.tier,
        "arm": str(plan.arm),
        "model": result.model,
        "outcome": outcome,
        "probabilities": probabilities,
    }
    if config.observability.log_prompts:
        item["prompt"] = record["prompt"]
        item["answer"] = answer
    rt.review.offer(plan.tier, str(plan.arm), item)
    if (
        plan.arm is Arm.CANARY
        and outcome == mdefs.OUTCOME_OK
        and answer is not None
        and plan.baseline is not None
        and rt.shadows_in_flight < MAX_SHADOWS_IN_FLIGHT
        and should_shadow(request_id, config.shadow.sample_rate)
    ):
        rt.spawn(_shadow(rt, state, req, plan, result.model, answer, body_for))
    return response


async def _forward_stream(
    request: web.Request,
    answer: StreamAnswer,
    headers: dict[str, str],
    did: str,
    req: ChatRequest,
    t0: float,
    deadline: float,
    collect: bool,
) -> tuple[web.StreamResponse, dict[str, Any] | None, str | None, float, str | None]:
    """Forward SSE chunks as they arrive, rewriting id/model; end with an OpenAI error
    event if the upstream fails (or the deadline passes) after the first chunk."""
    loop = asyncio.get_running_loop()
    resp = web.StreamResponse(
        headers={**headers, "Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    await resp.prepare(request)
    failed: str | None = None
    ttft = loop.time() - t0
    rewriter = ChunkRewriter(did, req.model, req.include_usage, collect)

    async def emit(line: bytes) -> bool:
        """Write one data line; False at the end of the stream."""
        out = rewriter.rewrite(line)
        if out is not None:
            await resp.write(out)
        return out != b"data: [DONE]\n\n"

    try:
        try:
            async with asyncio.timeout_at(deadline):
                more = await emit(answer.first)
                if more:
                    async for line in answer.lines():
                        if not await emit(line):
                            break
        except TimeoutError:
            failed = "deadline_exceeded"
            await _stream_error(
                resp,
                DeadlineExceededError(
                    "The request deadline passed while the answer was streaming."
                ),
            )
        except (ConnectionResetError, asyncio.CancelledError):
            raise
        except Exception as exc:
            failed = "upstream_stream_failed"
            log.warning("upstream stream broke after the first chunk: %s", exc)
            await _stream_error(
                resp,
                UpstreamFailedError("The upstream model failed while the answer was streaming."),
            )
        await resp.write_eof()
    except ConnectionResetError:
        failed = failed or CLIENT_DISCONNECTED
    finally:
        answer.close()
    return resp, rewriter.usage, (rewriter.text if collect else None), ttft, failed


async def _stream_error(resp: web.StreamResponse, err: RouterError) -> None:
    with contextlib.suppress(ConnectionResetError):
        await resp.write(b"data: " + json.dumps(err.body()).encode() + b"\n\n")


async def _shadow(
    rt: Runtime,
    state: RouterState,
    req: ChatRequest,
    plan: RoutePlan,
    canary_model: str,
    canary_answer: str,
    body_for: Callable[[str], dict[str, Any]],
) -> None:
    """Ask the baseline the same question (non-streaming) and judge the pair."""
    assert plan.baseline is not None
    rt.shadows_in_flight += 1
    policy = state.config.policy
    verdict = mdefs.VERDICT_ERROR
    try:
        client = state.pool.clients[plan.baseline]
        body = body_for(plan.baseline)
        body["stream"] = False
        body.pop("stream_options", None)
        payload = (await client.complete(body)).payload
        usage = payload.get("usage") or {}
        pricing = client.model.pricing
        rt.metrics.shadow_cost.labels(policy, plan.tier, plan.baseline).inc(
            (
                int(usage.get("prompt_tokens") or 0) * pricing.input_per_million_tokens
                + int(usage.get("completion_tokens") or 0) * pricing.output_per_million_tokens
            )
            / 1e6
        )
        question = classifier_text(req.messages, "LastUserMessage", 4000)
        verdict = await state.judge.judge(question, canary_answer, answer_text(payload))
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.info("shadow evaluation failed: %s", exc)
    finally:
        rt.shadows_in_flight -= 1
        rt.metrics.shadow_judgements.labels(
            policy, plan.tier, str(plan.arm), canary_model, verdict
        ).inc()


RATINGS = {
    "up": mdefs.RATING_UP,
    "down": mdefs.RATING_DOWN,
    "thumbs_up": mdefs.RATING_UP,
    "thumbs_down": mdefs.RATING_DOWN,
    "1": mdefs.RATING_UP,
    "-1": mdefs.RATING_DOWN,
}


async def feedback(request: web.Request) -> web.Response:
    """``POST /v1/feedback {"id": <response id>, "rating": "up"|"down"}``."""
    rt = request.app[RUNTIME]
    state = _state(request)
    _authorize(request, state)
    body = parse_json(await _read_body(request, state.config.server.max_body_bytes))
    if not isinstance(body, dict):
        raise InvalidRequestError(
            "The body must be a JSON object.", param="body", code="invalid_type"
        )
    did, rating_raw = body.get("id"), body.get("rating")
    if not isinstance(did, str) or not did:
        raise InvalidRequestError(
            "Missing required parameter: 'id' (the response id).",
            param="id",
            code="missing_required_parameter",
        )
    rating = RATINGS.get(str(rating_raw).lower()) if isinstance(rating_raw, str | int) else None
    if rating is None or isinstance(rating_raw, bool):
        raise InvalidRequestError(
            "'rating' must be 'up' or 'down'.", param="rating", code="invalid_value"
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
    rt.metrics.feedback.labels(
        decision.policy, decision.tier, decision.arm, decision.model, rating
    ).inc()
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


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    rt = app[RUNTIME]
    settings = rt.settings
    config = settings.config
    if config is None and settings.source is not None:
        config = parse_config(await settings.source.load())
    if config is None:
        raise ValueError("RouterSettings needs a config or a source")
    rt.metrics = RouterMetrics(parse_duration(d) for d in config.observability.latency_objectives)
    await apply_config(rt, config)
    rt.metrics.config_reloads.labels(config.policy, mdefs.RELOAD_OK).inc()
    if settings.source is not None:
        source = settings.source

        async def on_text(text: str) -> None:
            await reload_text(rt, text)

        rt.spawn(source.watch(on_text))
    rt.spawn(_flush_loop(rt))
    yield
    for task in list(rt.background):
        task.cancel()
    await asyncio.gather(*rt.background, return_exceptions=True)
    _write_review(rt)
    rt.decision_log.close()
    if rt.state is not None:
        await rt.state.pool.close()


def _write_review(rt: Runtime) -> None:
    state = rt.state
    path = state.config.observability.review_sample_path if state else None
    if path:
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(rt.review.export_jsonl())
        except OSError as exc:
            log.warning("cannot write the review sample to %s: %s", path, exc)


async def _flush_loop(rt: Runtime) -> None:
    ticks = 0
    while True:
        await asyncio.sleep(1.0)
        rt.decision_log.flush()
        ticks += 1
        if ticks % max(1, int(rt.settings.review_flush_interval_s)) == 0:
            _write_review(rt)


def create_app(settings: RouterSettings) -> web.Application:
    """The router app. Config is loaded in the app's startup (cleanup_ctx); until then
    ``/readyz`` answers 503."""
    app = web.Application(middlewares=[error_middleware], client_max_size=1 << 30)
    app[RUNTIME] = Runtime(settings=settings, metrics=RouterMetrics())
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_post("/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_post("/v1/feedback", feedback)
    app.router.add_get("/metrics", metrics_view)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/admin/review-sample", review_sample)
    return app
