"""The router Deployment the operator renders (``spec.router``): replicas, limits, keys,
shadow evaluation with its judge, tracing. Re-exported by policy.py."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from tierguard.api.durations import AtLeast, Duration
from tierguard.api.judgeprompt import JudgePromptRef
from tierguard.api.policy_base import ApiModel, Fraction, Name, SecretKeyRef, cel
from tierguard.api.policy_limits import MIN_FEEDBACK_TTL, MIN_REQUEST_DEADLINE


class ResourceRequirements(ApiModel):
    """Container resources, as in a Pod spec."""

    requests: dict[str, str] = Field(
        default_factory=lambda: {"cpu": "250m", "memory": "256Mi", "ephemeral-storage": "64Mi"},
        description="Requested resources.",
    )
    limits: dict[str, str] = Field(
        default_factory=lambda: {"memory": "512Mi", "ephemeral-storage": "256Mi"},
        description=(
            "Resource limits. The ephemeral-storage limit bounds /tmp (an emptyDir) and "
            "the container's logs, so a runaway decision log cannot evict other pods."
        ),
    )


class JudgeSpec(ApiModel):
    """Who judges a shadow pair (candidate answer vs baseline answer)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.mode) || self.mode != 'Pairwise' || "
                    "(has(self.type) && self.type == 'LLM' && has(self.model))",
                    "mode Pairwise needs type LLM and a judge model",
                    ".mode",
                ),
                cel(
                    "!has(self.promptConfigMapRef) || (has(self.mode) && self.mode == 'Pairwise')",
                    "promptConfigMapRef needs mode Pairwise (only the pairwise judge uses a "
                    "prompt template)",
                    ".promptConfigMapRef",
                ),
            ]
        }
    )

    type: str = Field(
        default="Similarity",
        pattern=r"^(Similarity|LLM)$",
        description=(
            "Similarity: built-in lexical similarity of the two answers, a smoke signal (it "
            "catches a candidate answering something else entirely, not a subtle quality "
            "loss). LLM: ask the model below."
        ),
    )
    mode: str = Field(
        default="Agreement",
        pattern=r"^(Agreement|Pairwise)$",
        description=(
            "For type LLM. Agreement: the judge says whether the two answers agree "
            "(AGREE/DISAGREE); a ShadowDisagreement SLO gates the canary's disagreement "
            "rate. Pairwise: the judge is asked twice, in both orders, which answer is "
            "better ([[A]], [[B]] or [[TIE]]); a verdict that changes with the order is a "
            "tie, a failed or unreadable reply is missing data; a ShadowDisagreement SLO "
            "gates the canary's net share of worse answers with the paired sequential test "
            "(docs/statistics.md)."
        ),
    )
    model: Name | None = Field(
        default=None,
        description=(
            "For type LLM: one of spec.models used as the judge. Never the baseline or "
            "the candidate of a route with a candidate (a model judging its own answers "
            "prefers them)."
        ),
    )
    threshold: Fraction = Field(
        default=0.5, description="Similarity at or above which the answers agree."
    )
    max_order_inconsistency: Fraction = Field(
        default=0.5,
        description=(
            "Pairwise: largest share of judged pairs whose verdict changes with the order "
            "of the answers. Once the rate's lower 95 % anytime-valid confidence bound is "
            "beyond it the judge is unhealthy and a pairwise gate is Inconclusive (reason "
            "JudgeUnhealthy), never Pass; a Pass needs the upper bound within it "
            "(until then JudgeHealthUndecided). A judge answering at random changes its "
            "verdict in 2/3 of the pairs."
        ),
    )
    max_error_rate: Fraction = Field(
        default=0.2,
        description=(
            "Pairwise: largest share of shadowed requests without a verdict (shadow call or "
            "judge failed, timed out or replied unreadably). Once the rate's lower 95 % "
            "anytime-valid confidence bound is beyond it the judge is unhealthy: "
            "Inconclusive (JudgeUnhealthy), never Pass; a Pass needs the upper bound "
            "within it (until then JudgeHealthUndecided)."
        ),
    )

    prompt_config_map_ref: JudgePromptRef | None = Field(
        default=None,
        description=(
            "Pairwise: a ConfigMap key holding the judge's prompt template (UTF-8 text), "
            "with the placeholders {question}, {answer_a} and {answer_b} (required) and "
            "{reference} (optional: the request's metadata.tierguard_reference, never sent "
            "to the models), asking for [[A]], [[B]] or [[TIE]]. Unset: the built-in "
            "prompt (docs/concepts.md). Part of the revision by content (editing it starts "
            "a new revision; the same bytes under another name do not); the routers mount "
            "an immutable copy; an unreadable or invalid template holds the rollout."
        ),
    )

    @model_validator(mode="after")
    def _mode_needs(self) -> JudgeSpec:
        if self.mode == "Pairwise" and (self.type != "LLM" or self.model is None):
            raise ValueError("router.shadow.judge: mode Pairwise needs type LLM and a judge model")
        if self.prompt_config_map_ref is not None and self.mode != "Pairwise":
            raise ValueError("router.shadow.judge: promptConfigMapRef needs mode Pairwise")
        return self


class ShadowSpec(ApiModel):
    """Shadow evaluation: a sample of canary requests is also sent to the baseline."""

    sample_rate: Fraction = Field(
        default=0.1, description="Share of canary requests shadowed (no latency added)."
    )
    judge: JudgeSpec = Field(default_factory=JudgeSpec, description="Judge.")


class TracingSpec(ApiModel):
    """OpenTelemetry traces of the router (OTLP over HTTP): one server span per client
    request, one client span per upstream call, evaluation events (docs/metrics.md,
    Traces). Needs the router image to carry the ``tierguard[otel]`` extra; without it the
    router logs that tracing is off and serves as usual."""

    endpoint: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://",
        description=(
            "OTLP/HTTP traces endpoint, e.g. http://otel-collector.monitoring:4318/v1/traces. "
            "Unset: no traces. Exporter headers (credentials) come from the standard "
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS environment variable, never from here."
        ),
    )
    sample_ratio: Fraction = Field(
        default=1.0,
        description=(
            "Share of traces started by the router that are sampled (parent-based: a "
            "request arriving with a sampled traceparent is always traced)."
        ),
    )
    capture_content: bool = Field(
        default=False,
        description=(
            "Put prompt and answer text on the spans (gen_ai.input.messages, "
            "gen_ai.output.messages). Off: no content ever leaves the router in telemetry."
        ),
    )
    service_name: str = Field(
        default="tierguard-router", max_length=253, description="OpenTelemetry service.name."
    )


class RouterSpec(ApiModel):
    """The router Deployment the operator renders for this policy."""

    image: str = Field(
        default="tierguard/router:0.1.0", max_length=512, description="Router image."
    )
    replicas: int = Field(
        default=2,
        ge=0,
        le=100,
        description="Router replicas. From 2 up, a PodDisruptionBudget lets at most one be "
        "evicted at a time (with one, a budget would protect nothing: none is made).",
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Router processes per replica sharing its port (SO_REUSEPORT; `tierguard router "
            "--workers`). Each takes up to one CPU, so size resources.limits.cpu to match. "
            "/metrics on any of them reports the replica's totals (summed over workers)."
        ),
    )
    port: int = Field(default=8080, ge=1024, le=65535, description="HTTP port.")
    resources: ResourceRequirements = Field(
        default_factory=ResourceRequirements,
        description="Container resources.",
    )
    log_level: str = Field(
        default="info", pattern=r"^(debug|info|warning|error)$", description="Log level."
    )
    max_body_bytes: int = Field(
        default=1_048_576, ge=1024, le=67_108_864, description="Largest accepted request body."
    )
    max_response_bytes: int = Field(
        default=33_554_432,
        ge=65_536,
        le=1_073_741_824,
        description=(
            "Largest upstream answer the router reads: a whole non-streaming answer, or one "
            "event of a stream (there is no other line limit). Over it, the attempt fails "
            "(before the first chunk: the next model is tried) with a message naming this "
            "field."
        ),
    )
    request_deadline: Annotated[Duration, AtLeast(MIN_REQUEST_DEADLINE)] = Field(
        default="60s", description="Total deadline of one request, fallbacks included."
    )
    signing_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description=(
            "Secret with the HMAC key that signs decision ids (for feedback). Unset: the "
            "operator creates one owned by the policy."
        ),
    )
    client_api_keys_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret with API keys (one per line) clients must present to the router.",
    )
    feedback_ttl: Annotated[Duration, AtLeast(MIN_FEEDBACK_TTL)] = Field(
        default="24h", description="How long a response id accepts feedback."
    )
    shadow: ShadowSpec = Field(
        default_factory=ShadowSpec,
        description="Shadow evaluation.",
    )
    review_sample_size: int = Field(
        default=200,
        ge=0,
        le=100000,
        description="Requests kept per tier and arm in the human review sample (reservoir).",
    )
    log_prompts: bool = Field(
        default=False, description="Write prompt text into the decision log (off: privacy)."
    )
    overhead_header: bool = Field(
        default=False,
        description=(
            "Add an x-tierguard-overhead-ms header to every answer: the time the router "
            "itself spent on the request (upstream time excluded), in milliseconds."
        ),
    )
    tracing: TracingSpec = Field(
        default_factory=TracingSpec, description="OpenTelemetry traces (OTLP/HTTP)."
    )
