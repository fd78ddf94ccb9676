"""RouterConfig: what the operator renders into the router's ConfigMap and the router
loads. It is a resolved, flattened view of a RoutingPolicy plus the rollout's current
split, so the router needs no Kubernetes knowledge and no rollout logic: it applies
weights, it never decides them.

Secrets are referenced by environment variable or file path only; their values never
appear in this document.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from tierguard.api.durations import Duration
from tierguard.api.enums import Arm, StickinessKey, Tiering
from tierguard.api.policy import (
    ApiModel,
    Fraction,
    JudgeSpec,
    Name,
    Pricing,
    SliceSpec,
    TierSpec,
    TracingSpec,
    check_no_text_tier,
)

CONFIG_VERSION = 1


class SecretSource(ApiModel):
    """Where the router reads a secret value: an environment variable or a mounted file."""

    env: str | None = Field(default=None, description="Environment variable name.")
    file: str | None = Field(default=None, description="Path of a mounted file.")

    @model_validator(mode="after")
    def _one(self) -> SecretSource:
        if (self.env is None) == (self.file is None):
            raise ValueError("a secret source needs exactly one of env or file")
        return self


class ClassifierConfig(ApiModel):
    path: str | None = Field(
        default=None, description="ONNX model file; unset: the bundled default model."
    )
    input: str = Field(default="LastUserMessage", pattern=r"^(LastUserMessage|AllUserMessages)$")
    max_input_chars: int = Field(default=4000, ge=64)
    tiering: Tiering = Tiering.SESSION
    session_messages: int = Field(default=0, ge=0)
    cache_size: int = Field(default=10000, ge=0)
    tiers: list[TierSpec] = Field(min_length=1)
    no_text_tier: Name | None = Field(
        default=None,
        description="Tier for requests with no user text; unset: the last (most capable).",
    )

    @model_validator(mode="after")
    def _no_text_tier(self) -> ClassifierConfig:
        check_no_text_tier(self.no_text_tier, [t.name for t in self.tiers])
        return self

    @property
    def no_text_tier_name(self) -> str:
        """The tier of a request with nothing to classify."""
        return self.no_text_tier or self.tiers[-1].name


class UpstreamModel(ApiModel):
    name: Name
    base_url: str = Field(alias="baseURL")
    upstream_model: str
    api_key: SecretSource | None = None
    pricing: Pricing = Field(default_factory=Pricing)
    timeout: Duration = "30s"
    context_window: int | None = Field(default=None, ge=1)
    system_prompt: str | None = None
    stream_usage: bool = Field(
        default=False,
        description="Ask this upstream for stream_options.include_usage on streaming calls.",
    )


class Route(ApiModel):
    tier: Name
    baseline: Name
    candidate: Name | None = None
    fallbacks: list[Name] = Field(default_factory=list)
    latency_budget: Duration = "2s"


class TierSplit(ApiModel):
    """The canary share of one tier. Buckets below ``weight`` percent go to the candidate;
    the rest stay on the baseline and are labelled ``control_arm`` (``control`` during a
    rollout, ``holdback`` after promotion). Raising the weight only moves users from the
    baseline to the candidate, never back."""

    tier: Name
    weight: Annotated[float, Field(ge=0.0, le=100.0)] = 0.0
    control_arm: Arm = Arm.CONTROL
    #: pre-flight: the share of this tier's stateless baseline-served requests (by hash
    #: of the stickiness key) also sent to the candidate and judged pairwise; the
    #: candidate's answer is never shown. 0 outside pre-flight.
    mirror_rate: Fraction = 0.0

    @model_validator(mode="after")
    def _arm(self) -> TierSplit:
        if self.control_arm not in (Arm.CONTROL, Arm.HOLDBACK):
            raise ValueError("split.controlArm must be control or holdback")
        return self


class Stickiness(ApiModel):
    key: StickinessKey = StickinessKey.SESSION
    header: str = "x-tierguard-user"
    session_header: str = "x-session-id"


class ServerConfig(ApiModel):
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    max_response_bytes: int = Field(
        default=33_554_432,
        ge=65_536,
        description="Largest upstream answer read: a whole JSON answer or one SSE event.",
    )
    request_deadline: Duration = "60s"
    client_api_keys: SecretSource | None = Field(
        default=None, description="Keys clients must present (one per line); unset: open."
    )
    log_level: str = "info"


class FeedbackConfig(ApiModel):
    signing_key: SecretSource | None = Field(
        default=None,
        description="HMAC key for decision ids; unset: a random per-process key (dev only).",
    )
    ttl: Duration = "24h"


class ShadowConfig(ApiModel):
    sample_rate: Fraction = 0.1
    judge: JudgeSpec = Field(default_factory=JudgeSpec)
    judge_prompt_path: str | None = Field(
        default=None,
        description=(
            "The pairwise judge's prompt template file (the frozen copy the operator "
            "mounts); unset: the built-in template."
        ),
    )
    judge_prompt_digest: str = Field(
        default="",
        description=(
            "The template's content digest the rollout runs (status.judgePromptDigest). A "
            "replica whose file has another digest (a pod of the previous revision) does "
            "not judge until it is replaced."
        ),
    )


class ObservabilityConfig(ApiModel):
    latency_objectives: list[Duration] = Field(
        default_factory=list,
        description="SLO latency thresholds; each becomes a histogram bucket boundary.",
    )
    decision_log: str | None = Field(
        default="-", description="Decision log path; '-' for stdout, unset to disable."
    )
    log_prompts: bool = False
    overhead_header: bool = Field(
        default=False,
        description="Add x-tierguard-overhead-ms (the router's own time) to every answer.",
    )
    review_sample_size: int = Field(default=200, ge=0)
    review_sample_path: str | None = None
    tracing: TracingSpec = Field(default_factory=TracingSpec)


class MirrorBudgetConfig(ApiModel):
    """Pre-flight's budget as each router process enforces it
    (:mod:`tierguard.router.mirrorbudget`): what one process may commit to mirrored and
    judge calls under this ``epoch``, reserved before each call starts."""

    epoch: str = Field(min_length=1, max_length=256)
    usd_per_router: float = Field(ge=0.0)


class RouterConfig(ApiModel):
    """Everything one router process needs."""

    version: int = CONFIG_VERSION
    policy: str = Field(description="Policy name (a metrics label).")
    namespace: str = "default"
    revision: str = ""
    salt: str = Field(description="Split hash salt; same on every replica of a policy.")
    classifier: ClassifierConfig
    shadow_classifier: ClassifierConfig | None = Field(
        default=None,
        description=(
            "Decision shadow of a classifier change: the candidate classifier. It scores "
            "every classified request beside `classifier` (which decides) and the router "
            "counts the tier transitions; unset (the usual case): nothing extra runs."
        ),
    )
    classifier_canary_weight: Annotated[float, Field(ge=0.0, le=100.0)] = Field(
        default=0.0,
        description=(
            "Classifier canary: percent of sessions (by the stickiness key) whose tier "
            "`shadowClassifier` decides; the others keep `classifier`. 0: it only scores."
        ),
    )
    models: list[UpstreamModel] = Field(min_length=1)
    routes: list[Route] = Field(min_length=1)
    split: list[TierSplit] = Field(default_factory=list)
    stickiness: Stickiness = Field(default_factory=Stickiness)
    server: ServerConfig = Field(default_factory=ServerConfig)
    feedback: FeedbackConfig = Field(default_factory=FeedbackConfig)
    shadow: ShadowConfig = Field(default_factory=ShadowConfig)
    observability: ObservabilityConfig = Field(default_factory=ObservabilityConfig)
    slices: list[SliceSpec] = Field(
        default_factory=list,
        description="The policy's analysis.slices: each request's slice labels.",
    )
    mirror_budget: MirrorBudgetConfig | None = Field(
        default=None,
        description="Pre-flight's spend budget per router process (set with mirror rates).",
    )

    @model_validator(mode="after")
    def _references(self) -> RouterConfig:
        models = {m.name for m in self.models}
        tiers = [t.name for t in self.classifier.tiers]
        errors: list[str] = []
        for r in self.routes:
            if r.tier not in tiers:
                errors.append(f"routes: tier {r.tier!r} is not a classifier tier {tiers}")
            for name in [r.baseline, r.candidate, *r.fallbacks]:
                if name is not None and name not in models:
                    errors.append(f"routes[{r.tier}]: unknown model {name!r}")
        if self.classifier_canary_weight > 0 and self.shadow_classifier is None:
            errors.append("classifierCanaryWeight needs a shadowClassifier")
        if self.shadow_classifier is not None:
            shadow_tiers = [t.name for t in self.shadow_classifier.tiers]
            if shadow_tiers != tiers:
                errors.append(
                    f"shadowClassifier: tiers {shadow_tiers} are not the classifier's {tiers}"
                )
        route_tiers = {r.tier for r in self.routes}
        errors += [f"classifier tier {t!r} has no route" for t in tiers if t not in route_tiers]
        errors += [
            f"split: tier {s.tier!r} has no route" for s in self.split if s.tier not in route_tiers
        ]
        if self.shadow.judge.model is not None and self.shadow.judge.model not in models:
            errors.append(f"shadow.judge.model: unknown model {self.shadow.judge.model!r}")
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def weight(self, tier: str) -> TierSplit:
        for s in self.split:
            if s.tier == tier:
                return s
        return TierSplit(tier=tier)
