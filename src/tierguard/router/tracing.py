"""OpenTelemetry traces of the router (the optional ``tierguard[otel]`` extra).

Spans (names and attributes: :mod:`tierguard.api.traces`, built by
:mod:`tierguard.router.spanattrs`; docs/metrics.md, Traces):

* one SERVER span ``chat {model}`` per client request, continuing the W3C
  ``traceparent`` the client sent;
* under it one CLIENT span ``chat {upstream model}`` per upstream call: every attempt of
  the fallback chain (``tierguard.call.kind`` ``primary`` or ``fallback``, with
  ``tierguard.fallback.reason``), the shadow call (``shadow``) and the LLM judge's call
  (``judge``); each carries its own ``traceparent`` to the upstream;
* ``gen_ai.evaluation.result`` events for judge verdicts and client feedback.

Evaluation events and the span they evaluate. A verdict or a rating arrives after the
request's spans have ended, and an ended span takes no more events. So each evaluation
is an event on a short INTERNAL span ``evaluation {gen_ai.evaluation.name}`` whose
*parent* is the evaluated request's SERVER span, found by the trace context kept with
the decision: the shadow task holds it, and feedback looks it up by the decision's
request id among the last :data:`RECENT_DECISIONS` requests this process served. The
judge's evaluation span also *links* to the CLIENT span that produced the judged answer.
Feedback for a request this process no longer knows (another replica, a restart) gets a
span in the feedback request's own trace; ``gen_ai.response.id`` (the decision id) joins
it to the request.

Nothing is recorded when tracing is off: the app holds ``None`` and every hook is behind
one ``is None`` test. Without the extra installed, a configured endpoint is reported once
in the log and the router serves untraced.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from tierguard.api import traces as a
from tierguard.api.policy import TracingSpec
from tierguard.router import spanattrs
from tierguard.router.upstream import (
    AttemptError,
    JsonAnswer,
    StreamAnswer,
    UpstreamCall,
    UpstreamClient,
)

log = logging.getLogger("tierguard.router")

try:
    from opentelemetry import trace as otel
    from opentelemetry.trace import Link, NonRecordingSpan, SpanKind, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
except ImportError:  # the otel extra is not installed
    otel = None  # type: ignore[assignment]

#: request id → SERVER span context of the requests this process served last (feedback)
RECENT_DECISIONS = 10_000
INSTRUMENTATION = "tierguard.router"


class Tracing:
    """The process's tracer and what outlives one request (recent span contexts)."""

    def __init__(self, provider: Any, *, capture_content: bool, owns_provider: bool) -> None:
        self.provider = provider
        self.tracer = provider.get_tracer(INSTRUMENTATION)
        self.propagator = TraceContextTextMapPropagator()
        self.capture_content = capture_content
        self.owns_provider = owns_provider
        self._recent: OrderedDict[str, Any] = OrderedDict()

    # -- requests

    def start_request(self, headers: Mapping[str, str], path: str) -> RequestTrace:
        """The SERVER span of a request, continuing the client's ``traceparent``."""
        parent = self.propagator.extract(headers)
        span = self.tracer.start_span(
            a.OPERATION_CHAT, context=parent, kind=SpanKind.SERVER, attributes={"url.path": path}
        )
        return RequestTrace(self, span)

    def remember(self, request_id: str, span_context: Any) -> None:
        self._recent[request_id] = span_context
        if len(self._recent) > RECENT_DECISIONS:
            self._recent.popitem(last=False)

    def recall(self, request_id: str) -> Any | None:
        return self._recent.get(request_id)

    def inject(self, span: Any) -> dict[str, str]:
        """The W3C trace headers naming ``span`` as the parent."""
        carrier: dict[str, str] = {}
        self.propagator.inject(carrier, context=otel.set_span_in_context(span))
        return carrier

    # -- evaluations

    def evaluation(
        self,
        *,
        parent: Any | None,
        attributes: dict[str, Any],
        link: Any | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A ``gen_ai.evaluation.result`` event on an INTERNAL span parented to the
        evaluated request's SERVER span context ``parent`` (see the module docstring);
        without it, to the trace of ``headers`` (the feedback request's)."""
        if parent is not None:
            ctx = otel.set_span_in_context(NonRecordingSpan(parent))
        else:
            ctx = self.propagator.extract(headers or {})
        links = [Link(link)] if link is not None else None
        name = attributes.get(a.EVALUATION_NAME, "")
        span = self.tracer.start_span(f"evaluation {name}", context=ctx, links=links)
        span.set_attribute(a.RESPONSE_ID, attributes[a.RESPONSE_ID])
        span.add_event(a.EVALUATION_EVENT, attributes)
        span.end()

    def shutdown(self) -> None:
        """Flush and stop the exporter the router built (an injected provider is its
        owner's)."""
        if self.owns_provider:
            self.provider.shutdown()


class RequestTrace:
    """The spans of one client request: its SERVER span, the CLIENT span of each chain
    attempt (ended when the chain is done, the served one when the answer is delivered)
    and the shadow and judge calls' spans."""

    __slots__ = (
        "attempt_spans",
        "client_attrs",
        "ctx",
        "next_reason",
        "request_id",
        "served",
        "server",
        "tracing",
    )

    def __init__(self, tracing: Tracing, server: Any) -> None:
        self.tracing = tracing
        self.server = server
        self.ctx = otel.set_span_in_context(server)
        self.client_attrs: dict[str, Any] = {}
        self.request_id = ""
        self.next_reason: str | None = None
        self.attempt_spans: dict[int, Any] = {}
        self.served: Any | None = None

    @property
    def capture_content(self) -> bool:
        return self.tracing.capture_content

    # -- the SERVER span

    def parsed(
        self,
        *,
        model: str,
        stream: bool,
        messages: list[dict[str, Any]],
        policy: str,
        revision: str,
        request_id: str,
    ) -> None:
        """The request is read: name the SERVER span after the model asked for."""
        self.request_id = request_id
        self.server.update_name(spanattrs.span_name(model))
        self.server.set_attributes(
            spanattrs.server_attributes(
                policy=policy,
                revision=revision,
                request_model=model,
                stream=stream,
                request_id=request_id,
            )
        )
        if self.tracing.capture_content:
            self.server.set_attribute(a.INPUT_MESSAGES, spanattrs.input_messages(messages))
        self.client_attrs = {"policy": policy, "revision": revision}

    def planned(
        self,
        *,
        tier: str,
        arm: str,
        tier_source: str,
        conversation: str | None,
        classifier: str | None,
    ) -> None:
        self.server.set_attributes(
            spanattrs.route_attributes(
                tier=tier,
                arm=arm,
                tier_source=tier_source,
                conversation=conversation,
                classifier=classifier,
            )
        )
        self.client_attrs.update(tier=tier, arm=arm, conversation=conversation)

    def delivered(
        self,
        *,
        response_id: str,
        response_model: str | None,
        usage: Mapping[str, Any] | None,
        answer: str | None,
        failed: str | None,
    ) -> None:
        """The answer the client got: ends the served CLIENT span too."""
        attrs = {a.RESPONSE_ID: response_id, **spanattrs.usage_attributes(usage)}
        if response_model:
            attrs[a.RESPONSE_MODEL] = response_model
        if failed is not None:
            attrs[a.ERROR_TYPE] = failed
        if answer is not None and self.tracing.capture_content:
            attrs[a.OUTPUT_MESSAGES] = spanattrs.output_messages(answer)
        self.server.set_attributes(attrs)
        served = self.served
        if served is not None and served.is_recording():
            served.set_attributes(spanattrs.usage_attributes(usage))
            if failed is not None:
                served.set_attribute(a.ERROR_TYPE, failed)
                served.set_status(StatusCode.ERROR)
            served.end()

    def finish(self, status: int, error_type: str | None = None) -> None:
        span = self.server
        span.set_attribute(a.HTTP_RESPONSE_STATUS_CODE, status)
        if error_type is not None:
            span.set_attribute(a.ERROR_TYPE, error_type)
            span.set_status(StatusCode.ERROR)
        for s in self.attempt_spans.values():  # a chain that ended by an exception
            _end_cancelled(s)
        self.attempt_spans.clear()
        if self.request_id:
            self.tracing.remember(self.request_id, span.get_span_context())
        span.end()

    # -- chain attempts (ChainEvents forwards the escalation reasons)

    def on_escalate(self, reason: str) -> None:
        self.next_reason = reason

    def _client_span(
        self, kind: str, client: UpstreamClient, stream: bool, reason: str | None = None
    ) -> Any:
        m = client.model
        attrs = spanattrs.client_attributes(
            kind=kind,
            model=m.name,
            upstream_model=m.upstream_model,
            base_url=m.base_url,
            stream=stream,
            fallback_reason=reason,
            **self.client_attrs,
        )
        return self.tracing.tracer.start_span(
            spanattrs.span_name(m.upstream_model),
            context=self.ctx,
            kind=SpanKind.CLIENT,
            attributes=attrs,
        )

    def attempt(
        self, index: int, client: UpstreamClient, call: UpstreamCall, stream: bool
    ) -> Awaitable[JsonAnswer | StreamAnswer]:
        """One chain attempt in its CLIENT span (a :class:`~tierguard.router.chain.
        AttemptRunner`). The span starts here, when the chain starts the attempt, right
        after the escalation that caused it was reported."""
        kind = a.CALL_PRIMARY if index == 0 else a.CALL_FALLBACK
        reason, self.next_reason = (self.next_reason if index else None), None
        span = self._client_span(kind, client, stream, reason)
        call.headers = self.tracing.inject(span)
        return self._attempt(span, index, client, call, stream)

    async def _attempt(
        self, span: Any, index: int, client: UpstreamClient, call: UpstreamCall, stream: bool
    ) -> JsonAnswer | StreamAnswer:
        try:
            answer = await client.attempt(call, stream=stream)
        except BaseException as exc:
            _end_failed(span, exc)
            raise
        if isinstance(answer, JsonAnswer):
            span.set_attributes(spanattrs.response_attributes(answer.payload))
        elif answer.head:
            span.set_attributes(spanattrs.chunk_attributes(answer.head[0]))
        self.attempt_spans[index] = span
        return answer

    def chain_done(self, index: int, answer: JsonAnswer | StreamAnswer) -> None:
        """The chain chose attempt ``index``: the others' spans end (cancelled), the
        served one ends now for a JSON answer, when delivered for a stream."""
        served = self.attempt_spans.pop(index, None)
        for s in self.attempt_spans.values():
            _end_cancelled(s)
        self.attempt_spans.clear()
        if served is None:
            return
        served.set_attribute(a.CALL_SERVED, True)
        if isinstance(answer, JsonAnswer):
            served.end()
        self.served = served

    # -- shadow and judge calls

    @contextmanager
    def call_span(self, kind: str, client: UpstreamClient) -> Iterator[tuple[Any, dict[str, str]]]:
        """A CLIENT span for a shadow or judge call and the headers to send with it."""
        span = self._client_span(kind, client, False)
        try:
            yield span, self.tracing.inject(span)
        except BaseException as exc:
            _end_failed(span, exc)
            raise
        span.end()

    def evaluation(self, *, label: str, response_id: str, explanation: str) -> None:
        """A judge verdict on this request's answer (see the module docstring)."""
        self.tracing.evaluation(
            parent=self.server.get_span_context(),
            link=self.served.get_span_context() if self.served is not None else None,
            attributes=spanattrs.evaluation_attributes(
                name=a.EVAL_SHADOW,
                label=label,
                response_id=response_id,
                explanation=explanation,
            ),
        )


def _end_failed(span: Any, exc: BaseException) -> None:
    if isinstance(exc, AttemptError):
        error = exc.reason
    elif isinstance(exc, Exception):
        error = type(exc).__qualname__
    else:  # cancelled (a hedge's loser, the deadline, the client leaving)
        error = a.ERROR_CANCELLED
    span.set_attribute(a.ERROR_TYPE, error)
    span.set_status(StatusCode.ERROR)
    span.end()


def _end_cancelled(span: Any) -> None:
    """An attempt that answered but whose answer was not used (a hedge's loser)."""
    if span.is_recording():
        span.set_attribute(a.ERROR_TYPE, a.ERROR_CANCELLED)
        span.end()


def build_tracing(spec: TracingSpec, provider: Any | None = None) -> Tracing | None:
    """The router's tracing, or None when it is off: no endpoint configured (and no
    ``provider`` injected, as tests do), or the ``otel`` extra missing (logged)."""
    if provider is None and spec.endpoint is None:
        return None
    if otel is None:
        log.warning(
            "observability.tracing.endpoint is set but OpenTelemetry is not installed; "
            "tracing is off (install the extra: pip install 'tierguard[otel]')"
        )
        return None
    if provider is not None:
        return Tracing(provider, capture_content=spec.capture_content, owns_provider=False)
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    except ImportError as exc:
        log.warning(
            "observability.tracing.endpoint is set but the OpenTelemetry SDK or OTLP "
            "exporter is missing (%s); tracing is off (pip install 'tierguard[otel]')",
            exc.name,
        )
        return None
    built = TracerProvider(
        resource=Resource.create({"service.name": spec.service_name}),
        sampler=ParentBased(TraceIdRatioBased(spec.sample_ratio)),
    )
    built.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=spec.endpoint)))
    log.info(
        "tracing: OTLP/HTTP to %s, sample ratio %g, content capture %s",
        urlsplit(spec.endpoint).hostname,  # never a user:password part
        spec.sample_ratio,
        "on" if spec.capture_content else "off",
    )
    return Tracing(built, capture_content=spec.capture_content, owns_provider=True)
