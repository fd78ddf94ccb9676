"""The upstream models of the RoutingPolicy spec (``spec.models``: endpoints, keys,
prices) and the per-tier routes (``spec.routes``). Re-exported by policy.py."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from tierguard.api.durations import AtLeast, Duration
from tierguard.api.policy_base import ApiModel, Name, SecretKeyRef, cel
from tierguard.api.policy_limits import MAX_FALLBACKS, MIN_LATENCY_BUDGET, MIN_TIMEOUT


class Pricing(ApiModel):
    """Prices in US dollars per million tokens, for the cost metrics and reports."""

    input_per_million_tokens: float = Field(
        default=0.0, ge=0, description="USD per 1M prompt tokens."
    )
    output_per_million_tokens: float = Field(
        default=0.0, ge=0, description="USD per 1M completion tokens."
    )
    cached_input_per_million_tokens: float | None = Field(
        default=None,
        ge=0,
        description=(
            "USD per 1M prompt tokens served from the provider's prompt cache (reported as "
            "usage.prompt_tokens_details.cached_tokens). Unset: the input price."
        ),
    )


class ModelSpec(ApiModel):
    """An upstream model behind an OpenAI-compatible endpoint."""

    name: Name = Field(description="Name used by routes, metrics and clients that pin a model.")
    base_url: str = Field(
        alias="baseURL",
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="OpenAI-compatible base URL, e.g. https://api.example.com/v1.",
    )
    upstream_model: str = Field(
        min_length=1, max_length=256, description="Model id sent to the upstream."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret holding the upstream API key (sent as a Bearer token).",
    )
    pricing: Pricing = Field(default_factory=Pricing, description="Token prices.")
    timeout: Annotated[Duration, AtLeast(MIN_TIMEOUT)] = Field(
        default="30s", description="Per-attempt timeout for one call to this model."
    )
    context_window: int | None = Field(
        default=None,
        ge=1,
        le=100_000_000,
        description=(
            "The model's context window in tokens. A request whose estimated prompt does "
            "not fit goes to the next model of its route's chain (or a higher tier's) that "
            "fits, counted as a context_window escalation (not an error). Unset: unlimited."
        ),
    )
    system_prompt: str | None = Field(
        default=None,
        max_length=20000,
        description=(
            "System prompt template prepended for this model so every model answers in the "
            "product's voice. Placeholders: {model}, {tier}. A client's own system message "
            "is kept after it."
        ),
    )
    stream_usage: bool = Field(
        default=False,
        description=(
            "The upstream accepts stream_options.include_usage (OpenAI and most compatible "
            "servers do): the router asks for the usage chunk on streaming calls, so tokens "
            "and cost of streamed answers are counted (the chunk is dropped again for clients "
            "that did not ask). Off: only a client's own stream_options is sent, and streamed "
            "answers count tokens only when the client asked for usage. If the upstream "
            "refuses the router's addition anyway, the call is retried without it (never "
            "counted against the model)."
        ),
    )


# --------------------------------------------------------------------------- routes


class RouteSpec(ApiModel):
    """How one tier is served."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.candidate) || self.candidate != self.baseline",
                    "candidate must differ from baseline",
                    ".candidate",
                )
            ]
        }
    )

    tier: Name = Field(description="Classifier tier this route serves.")
    baseline: Name = Field(description="Model serving the tier today (the control arm).")
    candidate: Name | None = Field(
        default=None,
        description=(
            "Model being rolled out for this tier (usually cheaper). Setting or changing it "
            "starts a rollout; unset means the tier is not under canary."
        ),
    )
    fallbacks: list[Name] = Field(
        default_factory=list,
        max_length=MAX_FALLBACKS,
        description=(
            "Models tried in order when the serving model fails (connection error, 429, 5xx, "
            "timeout) or misses the latency budget."
        ),
    )
    latency_budget: Annotated[Duration, AtLeast(MIN_LATENCY_BUDGET)] = Field(
        default="2s",
        description=(
            "Time to first byte after which the next model in the chain is started in "
            "parallel (a hedge); the first good answer wins."
        ),
    )

    @model_validator(mode="after")
    def _candidate_differs(self) -> RouteSpec:
        if self.candidate is not None and self.candidate == self.baseline:
            raise ValueError(
                f"routes[{self.tier}]: candidate must differ from baseline ({self.baseline})"
            )
        return self
