"""The RoutingPolicy spec: the single source of truth for the CRD schema, its CEL rules,
its defaults and the reference docs.

Field names are camelCase on the wire (Kubernetes API conventions) and snake_case in
Python. Every default lives here and is emitted into the CRD, so ``kubectl get -o yaml``
shows what the operator will do. Cross-field rules are written twice on purpose in one
place each: as CEL (``x-kubernetes-validations``) so the API server refuses a bad policy
at ``kubectl apply`` time, and as pydantic validators so the operator and the router refuse
the same input when it reaches them by another path (a file, an older API server).
"""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, model_validator

from tierguard.api import metrics as _metrics
from tierguard.api.classifierchange import ClassifierShadowSpec
from tierguard.api.durations import AtLeast, Duration, parse_duration
from tierguard.api.enums import (
    NoDataAction,
    PromotionMode,
    Signal,
    StickinessKey,
    Tiering,
)
from tierguard.api.policy_base import NAME_PATTERN, ApiModel, Fraction, Name, cel
from tierguard.api.preflight import PreFlightSpec

__all__ = ["NAME_PATTERN", "ApiModel", "Fraction", "Name", "PreFlightSpec"]


MAX_TIERS = 8
MAX_MODELS = 32
MAX_FALLBACKS = 4
MAX_STEPS = 20
MAX_SLOS = 32
#: Slice gates (analysis.slices): at most this many slices, each with at most this many
#: declared values (plus ``other``). They bound the slice counters' cardinality
#: (docs/metrics.md) and the number of gates sharing the false-rollback budget.
MAX_SLICES = 5
MAX_SLICE_VALUES = 20
#: The value every request outside a slice's declared list counts under.
SLICE_OTHER = _metrics.SLICE_OTHER
#: Slice gates per policy: sliced SLOs (ErrorRate, ThumbsDown, ShadowDisagreement) x the
#: slices' values (each + other). Each gate keeps its e-process state in status.gateState
#: (a few kB with its per-router, per-cluster readings), so this bounds the status size.
MAX_SLICE_GATES = 64
SLICED_SIGNAL_NAMES = ("ErrorRate", "ThumbsDown", "ShadowDisagreement")
SLICE_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,31}$"
SLICE_VALUE_PATTERN = r"^[a-z0-9]([-_.a-z0-9]{0,61}[a-z0-9])?$"
DEFAULT_STEPS = [5.0, 10.0, 25.0, 50.0, 100.0]

# Floors on durations (each becomes a CEL rule and a pydantic check, see AtLeast). Zero
# would make the operator spin (interval), judge a step before it was ever evaluated
# (bakeTime), give up at once (noData.after, maxStepDuration, timeouts) or hedge every
# request (latencyBudget).
MIN_INTERVAL = "5s"
MIN_BAKE_TIME = "5s"
MIN_MAX_STEP_DURATION = "1m"
MIN_NO_DATA_AFTER = "10s"
MIN_TIMEOUT = "1s"
MIN_LATENCY_BUDGET = "100ms"
MIN_LATENCY_OBJECTIVE = "1ms"
MIN_REQUEST_DEADLINE = "1s"
MIN_FEEDBACK_TTL = "1m"


_cel = cel


# --------------------------------------------------------------------------- classifier


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap in the policy's namespace."""

    name: Name = Field(description="ConfigMap name.")
    key: str = Field(
        default="model.onnx",
        max_length=253,
        description="Key holding the data (binaryData or data).",
    )


class SecretKeyRef(ApiModel):
    """A key in a Secret in the policy's namespace. Only the reference is stored; the
    value is mounted into the router and never copied into status, logs or metrics."""

    name: Name = Field(description="Secret name.")
    key: str = Field(default="api-key", max_length=253, description="Key within the Secret.")


class TierSpec(ApiModel):
    """One tier of the classifier's output, cheapest first."""

    name: Name = Field(description="Tier name as the classifier model reports it (e.g. simple).")
    threshold: Fraction | None = Field(
        default=None,
        description=(
            "Minimum probability for a query to be put in this tier. Tiers are tried in "
            "order, cheapest first; the first whose probability reaches its threshold wins, "
            "and the last tier takes everything else (its threshold is ignored). Unset: the "
            "threshold stored in the classifier model's metadata."
        ),
    )


class ClassifierSource(ApiModel):
    """Where the ONNX classifier comes from."""

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description=(
            "An ONNX model in a ConfigMap (binaryData; must stay under 1 MiB). Unset: the "
            "default model bundled with the router image. Rolled out by content: the "
            "revision hashes the model's bytes and the tier settings (not this name), and "
            "the routers mount an immutable copy the operator makes of it."
        ),
    )


class ClassifierSpec(ApiModel):
    """The query classifier that assigns each request a tier."""

    source: ClassifierSource = Field(
        default_factory=ClassifierSource,
        description="Model source; empty means the bundled default model.",
    )
    input: str = Field(
        default="LastUserMessage",
        pattern=r"^(LastUserMessage|AllUserMessages)$",
        description=(
            "Which part of the request is classified: the last user message, or all user "
            "messages joined. System prompts and assistant turns are never classified."
        ),
    )
    max_input_chars: int = Field(
        default=4000,
        ge=64,
        le=100000,
        description="Text beyond this many characters (from the end) is not classified.",
    )
    tiering: Tiering = Field(
        default=Tiering.SESSION,
        description=(
            "Session: a request's tier is the highest tier among its user messages (every "
            "chat request resends the conversation), so a conversation's tier only goes up "
            "and turns without new user text (tool results) keep theirs; each message is "
            "classified once and cached. Request: only this request's `input` is classified."
        ),
    )
    session_messages: int = Field(
        default=0,
        ge=0,
        le=10000,
        description=(
            "Session tiering looks at the last this many user messages; 0 means all of them."
        ),
    )
    cache_size: int = Field(
        default=10000,
        ge=0,
        le=1_000_000,
        description=(
            "Per-message classifier results kept per router (least recently used evicted), "
            "so classification cost does not grow with the conversation; 0 disables."
        ),
    )
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [TierSpec(name="simple"), TierSpec(name="complex")],
        min_length=1,
        max_length=MAX_TIERS,
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.all(t, self.exists_one(u, u.name == t.name))",
                    "tier names must be unique",
                )
            ],
        },
        description="Tiers in order, cheapest first. Must match the classifier model's tiers.",
    )
    no_text_tier: Name | None = Field(
        default=None,
        description=(
            "Tier for requests with nothing to classify: no user text at all (only images "
            "or other non-text parts, only system or assistant messages, blank text). Unset: "
            "the last, most capable tier, since nothing says the request is simple."
        ),
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "!has(self.noTextTier) || self.tiers.exists(t, t.name == self.noTextTier)",
                    "noTextTier must be one of classifier.tiers",
                    ".noTextTier",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _unique_tiers(self) -> ClassifierSpec:
        names = [t.name for t in self.tiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"classifier.tiers: duplicate tier names {sorted(dup)}")
        check_no_text_tier(self.no_text_tier, names)
        return self


def check_no_text_tier(no_text_tier: str | None, tiers: list[str]) -> None:
    """``noTextTier`` must name a tier (the same rule as the CEL rule above)."""
    if no_text_tier is not None and no_text_tier not in tiers:
        raise ValueError(f"classifier.noTextTier: {no_text_tier!r} is not one of {tiers}")


# --------------------------------------------------------------------------- models


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
                _cel(
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


# --------------------------------------------------------------------------- rollout


class StickinessSpec(ApiModel):
    """What keeps a user in one arm across requests and replicas."""

    key: StickinessKey = Field(
        default=StickinessKey.SESSION,
        description=(
            "session (the default for new policies; a policy created before keeps the `user` "
            "the API server stored for it): the "
            "conversation, from the `sessionHeader`, else the request's `prompt_cache_key`, "
            "else `user`, else a fingerprint of the conversation's start (system prompt "
            "head + first user message); user: the request's `user` field (then the header, "
            "then the request id); header: the header below; requestId: no stickiness."
        ),
    )
    session_header: str = Field(
        default="x-session-id",
        max_length=128,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header carrying a session (conversation) id, for key: session.",
    )
    header: str = Field(
        default="x-tierguard-user",
        max_length=128,
        pattern=r"^[A-Za-z0-9-]+$",
        description="Header carrying a stable user or session id.",
    )


class NoDataSpec(ApiModel):
    """What a stage does while Prometheus is unreachable or returns no data."""

    after: Annotated[Duration, AtLeast(MIN_NO_DATA_AFTER)] = Field(
        default="10m",
        description="How long a stage holds without usable data before acting.",
    )
    action: NoDataAction = Field(
        default=NoDataAction.PAUSE,
        description="Pause (wait for a person) or Rollback once `after` has passed.",
    )


class RolloutSpec(ApiModel):
    """How the candidate is rolled out, step by step."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    # has(): the CRD's own default ({}) is checked before defaulting
                    "!has(self.maxStepDuration) || !has(self.bakeTime) || "
                    "duration(self.maxStepDuration) > duration(self.bakeTime)",
                    "maxStepDuration must be longer than bakeTime (no step could ever advance)",
                    ".maxStepDuration",
                ),
                _cel(
                    "!has(self.noData) || !has(self.noData.after) || !has(self.interval) || "
                    "duration(self.noData.after) >= duration(self.interval)",
                    "noData.after must be at least interval (gates are read once per interval)",
                    ".noData.after",
                ),
            ]
        }
    )

    steps: list[float] = Field(
        default_factory=lambda: list(DEFAULT_STEPS),
        min_length=1,
        max_length=MAX_STEPS,
        json_schema_extra={
            "items": {"type": "number", "minimum": 0, "exclusiveMinimum": True, "maximum": 100},
            "x-kubernetes-validations": [
                _cel(
                    "self.all(s, s > 0.0 && s <= 100.0)",
                    "every step must be within (0, 100]",
                ),
                _cel(
                    "self.isSorted() && self.all(s, self.indexOf(s) == self.lastIndexOf(s))",
                    "steps must be strictly increasing",
                ),
                _cel("self[size(self) - 1] == 100.0", "the last step must be 100"),
            ],
        },
        description=(
            "Canary weights in percent of the tier's traffic, strictly increasing, ending at 100."
        ),
    )
    interval: Annotated[Duration, AtLeast(MIN_INTERVAL)] = Field(
        default="1m", description="How often gates are evaluated."
    )
    bake_time: Annotated[Duration, AtLeast(MIN_BAKE_TIME)] = Field(
        default="5m", description="Minimum time at each step before it may advance."
    )
    min_samples_per_arm: int = Field(
        default=200,
        ge=1,
        le=10_000_000,
        description=(
            "Minimum samples per tier and arm (for each signal) before a step may pass. "
            "See docs/statistics.md to size it for your traffic."
        ),
    )
    max_step_duration: Annotated[Duration, AtLeast(MIN_MAX_STEP_DURATION)] = Field(
        default="2h",
        description="A step without enough evidence by then is Paused for a person to decide.",
    )
    holdback_percent: float = Field(
        default=5.0,
        ge=0.0,
        le=50.0,
        description=(
            "After promotion, this share of the tier stays on the baseline (the holdback "
            "arm) so a later quality drift is still caught. 0 disables post-promotion gates."
        ),
    )
    stickiness: StickinessSpec = Field(default_factory=StickinessSpec, description="Stickiness.")
    promotion: PromotionMode = Field(
        default=PromotionMode.AUTOMATIC,
        description="Automatic: advance when gates pass. Manual: pause before each step.",
    )
    no_data: NoDataSpec = Field(
        default_factory=NoDataSpec,
        description="Behaviour without usable metrics.",
    )
    preflight: PreFlightSpec = Field(
        default_factory=PreFlightSpec,
        description=(
            "Pre-flight: judge the candidate on mirrored requests at 0 % exposure before "
            "the first weighted step (docs/concepts.md, Pre-flight)."
        ),
    )
    classifier_shadow: ClassifierShadowSpec = Field(
        default_factory=ClassifierShadowSpec,
        description=(
            "Decision shadow: a classifier change first runs beside the stable classifier, "
            "which decides, and the tier transitions are counted (docs/concepts.md, "
            "Classifier changes)."
        ),
    )

    @model_validator(mode="after")
    def _steps_valid(self) -> RolloutSpec:
        s = self.steps
        if any(not (0.0 < x <= 100.0) for x in s):
            raise ValueError("rollout.steps: every step must be within (0, 100]")
        if any(b <= a for a, b in itertools.pairwise(s)):
            raise ValueError("rollout.steps: steps must be strictly increasing")
        if s[-1] != 100.0:
            raise ValueError("rollout.steps: the last step must be 100")
        if parse_duration(self.max_step_duration) <= parse_duration(self.bake_time):
            raise ValueError(
                "rollout.maxStepDuration: maxStepDuration must be longer than bakeTime "
                "(no step could ever advance)"
            )
        if parse_duration(self.no_data.after) < parse_duration(self.interval):
            raise ValueError(
                "rollout.noData.after: noData.after must be at least interval "
                "(gates are read once per interval)"
            )
        return self


# --------------------------------------------------------------------------- analysis


class CustomQuery(ApiModel):
    """A user signal as two PromQL expressions over counters. ``$tier`` and ``$arm`` are
    substituted; each must return one cumulative counter value (sum it yourself)."""

    bad: str = Field(
        min_length=1, max_length=4096, description="PromQL for bad outcomes (counter)."
    )
    total: str = Field(
        min_length=1, max_length=4096, description="PromQL for all outcomes (counter)."
    )


class SLOSpec(ApiModel):
    """A quality objective for one tier and one signal."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.signal != 'Custom' || has(self.query)",
                    "signal Custom needs query.bad and query.total",
                    ".query",
                ),
                _cel(
                    "self.signal != 'Latency' || has(self.latencyObjective)",
                    "signal Latency needs latencyObjective",
                    ".latencyObjective",
                ),
                _cel(
                    "self.objective != 'Absolute' || has(self.threshold)",
                    "objective Absolute needs threshold",
                    ".threshold",
                ),
                _cel(
                    "!has(self.failMargin) || self.failMargin <= self.allowedDrop",
                    "failMargin must not exceed allowedDrop",
                    ".failMargin",
                ),
            ]
        }
    )

    tier: Name = Field(description="Tier the objective applies to.")
    signal: Signal = Field(description="Which bad-outcome rate is judged.")
    objective: str = Field(
        default="RelativeToControl",
        pattern=r"^(RelativeToControl|Absolute)$",
        description=(
            "RelativeToControl: the canary's bad rate may exceed the control's by at most "
            "allowedDrop. Absolute: the canary's bad rate must stay at or under threshold. "
            "ShadowDisagreement is already a canary-versus-baseline measure (the same request "
            "answered by both), so RelativeToControl holds its rate to allowedDrop."
        ),
    )
    allowed_drop: Fraction = Field(
        default=0.02,
        description="Largest tolerated increase of the bad rate (0.02 = 2 percentage points).",
    )
    fail_margin: Fraction | None = Field(
        default=None,
        description=(
            "Loss the canary may show before a gate may roll back (RelativeToControl): FAIL "
            "means confident that the canary's bad rate exceeds the control's by more than "
            "this. Default: half of allowedDrop, so a canary within half the allowed drop is "
            "rolled back with probability at most 1 - confidence. At most allowedDrop; a "
            "larger margin rolls back fewer borderline canaries but catches a real loss later."
        ),
    )
    threshold: Fraction | None = Field(
        default=None, description="Bad-rate ceiling for objective Absolute."
    )
    latency_objective: Annotated[Duration, AtLeast(MIN_LATENCY_OBJECTIVE)] | None = Field(
        default=None,
        description="For signal Latency: a request slower than this counts as bad.",
    )
    query: CustomQuery | None = Field(default=None, description="For signal Custom.")

    @model_validator(mode="after")
    def _signal_needs(self) -> SLOSpec:
        if self.signal == Signal.CUSTOM and self.query is None:
            raise ValueError(f"slos[{self.tier}]: signal Custom needs query.bad and query.total")
        if self.signal == Signal.LATENCY and self.latency_objective is None:
            raise ValueError(f"slos[{self.tier}]: signal Latency needs latencyObjective")
        if self.objective == "Absolute" and self.threshold is None:
            raise ValueError(f"slos[{self.tier}]: objective Absolute needs threshold")
        if self.fail_margin is not None and self.fail_margin > self.allowed_drop:
            raise ValueError(
                f"slos[{self.tier}]: failMargin {self.fail_margin} exceeds allowedDrop "
                f"{self.allowed_drop}"
            )
        return self


class SliceSpec(ApiModel):
    """A named request attribute with a declared, bounded list of values: each value gets
    its own gates beside the tier's (the loss that hides below the tier)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.values.all(v, v != 'other')",
                    "'other' is reserved: requests outside the declared values count as other",
                    ".values",
                ),
                _cel(
                    "self.values.all(v, self.values.exists_one(w, w == v))",
                    "slice values must be unique",
                    ".values",
                ),
            ]
        }
    )

    name: Annotated[str, Field(pattern=SLICE_NAME_PATTERN, max_length=32)] = Field(
        description="Slice name, as in status and events (category=billing_status)."
    )
    source: str = Field(
        default="Metadata",
        pattern=r"^(Metadata|Header)$",
        description=(
            "Where the router reads the value: Metadata = the chat request's "
            "metadata.<key> (the OpenAI metadata field); Header = the request header <key>. "
            "The classifier emits no category label today, so these two are the sources."
        ),
    )
    key: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$",
        description="The metadata key or header name.",
    )
    values: list[Annotated[str, Field(pattern=SLICE_VALUE_PATTERN, max_length=63)]] = Field(
        min_length=1,
        max_length=MAX_SLICE_VALUES,
        description=(
            "Declared values (lower case; the request's value is trimmed and lower-cased "
            "before matching). Any other value, or none, counts as 'other', which is gated "
            "too: metric cardinality stays bounded."
        ),
    )
    min_samples: int | None = Field(
        default=None,
        ge=1,
        description=(
            "Unset (default): a slice value with too little traffic is Inconclusive and never "
            "holds a stage on its own (it can still roll back on confident evidence). Set: "
            "every declared value must reach this many samples per arm at each step (and "
            "pass) before the stage may advance."
        ),
    )

    @model_validator(mode="after")
    def _values(self) -> SliceSpec:
        if SLICE_OTHER in self.values:
            raise ValueError(
                f"slices[{self.name}].values: 'other' is reserved (requests outside the "
                "declared values count as other)"
            )
        dupes = sorted({v for v in self.values if self.values.count(v) > 1})
        if dupes:
            raise ValueError(f"slices[{self.name}].values: duplicate values {dupes}")
        return self

    def label(self, raw: object) -> str:
        """The slice value a request's raw attribute counts under (``other`` when it is
        missing, not a string or not declared)."""
        if not isinstance(raw, str):
            return SLICE_OTHER
        value = raw.strip().lower()
        return value if value in self.values else SLICE_OTHER


class AnalysisSpec(ApiModel):
    """How stages are judged."""

    confidence: float = Field(
        default=0.95,
        ge=0.5,
        lt=1.0,
        description=(
            "Family-wise confidence. The false-rollback budget (1 - confidence) is shared "
            "across every (tier, signal) gate of the rollout and stays valid although gates "
            "are evaluated every interval (anytime-valid sequential test)."
        ),
    )
    slos: list[SLOSpec] = Field(
        default_factory=list,
        max_length=MAX_SLOS,
        description="Per-tier objectives. Every tier with a candidate needs at least one.",
    )
    slices: list[SliceSpec] = Field(
        default_factory=list,
        max_length=MAX_SLICES,
        description=(
            "Slice gates: every ErrorRate, ThumbsDown and ShadowDisagreement SLO is also "
            "judged per (tier, slice value), 'other' included. Half of the false-rollback "
            "budget goes to the slice gates, shared equally (docs/statistics.md)."
        ),
        json_schema_extra={
            "x-kubernetes-validations": [
                _cel(
                    "self.all(s, self.exists_one(o, o.name == s.name))",
                    "slice names must be unique",
                )
            ]
        },
    )


# --------------------------------------------------------------------------- prometheus


class PrometheusSpec(ApiModel):
    """Where the operator reads the routers' metrics."""

    url: str = Field(
        default="http://prometheus-operated.monitoring.svc:9090",
        pattern=r"^https?://[^\s]+$",
        max_length=2048,
        description="Prometheus base URL.",
    )
    timeout: Annotated[Duration, AtLeast(MIN_TIMEOUT)] = Field(
        default="10s", description="Timeout of one query."
    )
    bearer_token_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret with a bearer token for Prometheus, if it needs one."
    )
    insecure_skip_verify: bool = Field(
        default=False, description="Skip TLS verification (testing only)."
    )


# --------------------------------------------------------------------------- router deployment


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
                _cel(
                    "!has(self.mode) || self.mode != 'Pairwise' || "
                    "(has(self.type) && self.type == 'LLM' && has(self.model))",
                    "mode Pairwise needs type LLM and a judge model",
                    ".mode",
                )
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
            "of the answers. Beyond it the judge is unhealthy and a pairwise gate is "
            "Inconclusive (reason JudgeUnhealthy), never Pass. A judge answering at random "
            "changes its verdict in 2/3 of the pairs."
        ),
    )
    max_error_rate: Fraction = Field(
        default=0.2,
        description=(
            "Pairwise: largest share of shadowed requests without a verdict (shadow call or "
            "judge failed, timed out or replied unreadably). Beyond it the judge is "
            "unhealthy: Inconclusive (JudgeUnhealthy), never Pass."
        ),
    )

    @model_validator(mode="after")
    def _mode_needs(self) -> JudgeSpec:
        if self.mode == "Pairwise" and (self.type != "LLM" or self.model is None):
            raise ValueError("router.shadow.judge: mode Pairwise needs type LLM and a judge model")
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
    replicas: int = Field(default=2, ge=0, le=100, description="Router replicas.")
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


# --------------------------------------------------------------------------- the spec

_SPEC_RULES: list[JsonValue] = [
    _cel(
        "self.routes.all(r, self.classifier.tiers.exists(t, t.name == r.tier))",
        "every route's tier must be one of classifier.tiers",
        ".routes",
    ),
    _cel(
        "self.routes.all(r, self.models.exists(m, m.name == r.baseline))",
        "every route's baseline must name one of spec.models",
        ".routes",
    ),
    _cel(
        "self.routes.all(r, !has(r.candidate) || self.models.exists(m, m.name == r.candidate))",
        "every route's candidate must name one of spec.models",
        ".routes",
    ),
    _cel(
        "self.routes.all(r, r.fallbacks.all(f, self.models.exists(m, m.name == f)))",
        "every fallback must name one of spec.models",
        ".routes",
    ),
    _cel(
        "self.routes.all(r, self.routes.exists_one(o, o.tier == r.tier))",
        "at most one route per tier",
        ".routes",
    ),
    _cel(
        "self.classifier.tiers.all(t, self.routes.exists(r, r.tier == t.name))",
        "every classifier tier needs a route",
        ".routes",
    ),
    _cel(
        "self.models.all(m, self.models.exists_one(o, o.name == m.name))",
        "model names must be unique",
        ".models",
    ),
    _cel(
        "self.analysis.slos.all(s, self.classifier.tiers.exists(t, t.name == s.tier))",
        "every SLO's tier must be one of classifier.tiers",
        ".analysis.slos",
    ),
    _cel(
        "self.routes.all(r, !has(r.candidate) || self.analysis.slos.exists(s, s.tier == r.tier))",
        "every tier with a candidate needs at least one SLO in analysis.slos",
        ".analysis.slos",
    ),
    _cel(
        "!has(self.router.shadow.judge.model) || "
        "self.models.exists(m, m.name == self.router.shadow.judge.model)",
        "router.shadow.judge.model must name one of spec.models",
        ".router.shadow.judge.model",
    ),
    _cel(
        "!has(self.router) || !has(self.router.shadow) || !has(self.router.shadow.judge) || "
        "!has(self.router.shadow.judge.model) || !has(self.router.shadow.judge.type) || "
        "self.router.shadow.judge.type != 'LLM' || self.routes.all(r, !has(r.candidate) || "
        "(r.baseline != self.router.shadow.judge.model && "
        "r.candidate != self.router.shadow.judge.model))",
        "router.shadow.judge.model must not be the baseline or the candidate of a route "
        "with a candidate (a model would judge its own answers)",
        ".router.shadow.judge.model",
    ),
    _cel(
        "!has(self.rollout) || !has(self.rollout.preflight) || "
        "!has(self.rollout.preflight.enabled) || !self.rollout.preflight.enabled || "
        "(has(self.router) && has(self.router.shadow) && has(self.router.shadow.judge) && "
        "has(self.router.shadow.judge.mode) && self.router.shadow.judge.mode == 'Pairwise')",
        "rollout.preflight.enabled needs router.shadow.judge.mode Pairwise (an LLM judge "
        "that compares the two answers); set enabled: false to skip pre-flight",
        ".rollout.preflight.enabled",
    ),
    _cel(
        "!has(self.rollout) || !has(self.rollout.preflight) || "
        "!has(self.rollout.preflight.tiers) || self.rollout.preflight.tiers.all(p, "
        "self.classifier.tiers.exists(t, t.name == p.tier))",
        "every rollout.preflight.tiers entry must name one of classifier.tiers",
        ".rollout.preflight.tiers",
    ),
    _cel(
        "size(self.analysis.slos.filter(s, s.signal in "
        "['ErrorRate', 'ThumbsDown', 'ShadowDisagreement'])) * ("
        + "".join(
            f"{' + ' if i else ''}(size(self.analysis.slices) > {i} ? "
            f"size(self.analysis.slices[{i}].values) + 1 : 0)"
            for i in range(MAX_SLICES)
        )
        + f") <= {MAX_SLICE_GATES}",
        f"too many slice gates: ErrorRate, ThumbsDown and ShadowDisagreement SLOs times "
        f"slice values (each plus other) must be at most {MAX_SLICE_GATES}",
        ".analysis.slices",
    ),
]


class RoutingPolicySpec(ApiModel):
    """Desired routing: tiers, models, routes, and how a candidate is rolled out and judged."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    classifier: ClassifierSpec = Field(
        default_factory=ClassifierSpec,
        description="Query classifier and tiers.",
    )
    models: list[ModelSpec] = Field(
        min_length=1, max_length=MAX_MODELS, description="Upstream models."
    )
    routes: list[RouteSpec] = Field(
        min_length=1, max_length=MAX_TIERS, description="One route per tier."
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="Rollout.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Gates.")
    prometheus: PrometheusSpec = Field(
        default_factory=PrometheusSpec,
        description="Prometheus connection.",
    )
    router: RouterSpec = Field(
        default_factory=RouterSpec,
        description="Router deployment settings.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> RoutingPolicySpec:
        """Mirror of the CEL rules, for input that does not come through the API server."""
        errors = cross_field_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def route(self, tier: str) -> RouteSpec:
        for r in self.routes:
            if r.tier == tier:
                return r
        raise KeyError(tier)


def cross_field_errors(spec: RoutingPolicySpec) -> list[str]:
    """Every cross-field problem, each naming its field, in the order of the CEL rules."""
    tiers = [t.name for t in spec.classifier.tiers]
    models = [m.name for m in spec.models]
    errors: list[str] = []
    for i, r in enumerate(spec.routes):
        if r.tier not in tiers:
            errors.append(
                f"spec.routes[{i}].tier: {r.tier!r} is not one of classifier.tiers {tiers}"
            )
        for field, name in (("baseline", r.baseline), ("candidate", r.candidate)):
            if name is not None and name not in models:
                errors.append(f"spec.routes[{i}].{field}: model {name!r} is not in spec.models")
        for j, f in enumerate(r.fallbacks):
            if f not in models:
                errors.append(f"spec.routes[{i}].fallbacks[{j}]: model {f!r} is not in spec.models")
    route_tiers = [r.tier for r in spec.routes]
    for t in sorted({t for t in route_tiers if route_tiers.count(t) > 1}):
        errors.append(f"spec.routes: more than one route for tier {t!r}")
    for t in tiers:
        if t not in route_tiers:
            errors.append(f"spec.routes: tier {t!r} has no route")
    for m in sorted({m for m in models if models.count(m) > 1}):
        errors.append(f"spec.models: duplicate model name {m!r}")
    slo_tiers = {s.tier for s in spec.analysis.slos}
    for i, s in enumerate(spec.analysis.slos):
        if s.tier not in tiers:
            errors.append(
                f"spec.analysis.slos[{i}].tier: {s.tier!r} is not one of classifier.tiers {tiers}"
            )
    for i, r in enumerate(spec.routes):
        if r.candidate is not None and r.tier not in slo_tiers:
            errors.append(
                f"spec.analysis.slos: tier {r.tier!r} has a candidate (routes[{i}]) but no SLO"
            )
    n_sliced = sum(1 for s in spec.analysis.slos if s.signal.value in SLICED_SIGNAL_NAMES)
    n_values = sum(len(sl.values) + 1 for sl in spec.analysis.slices)
    if n_sliced * n_values > MAX_SLICE_GATES:
        errors.append(
            f"spec.analysis.slices: too many slice gates: {n_sliced} ErrorRate, ThumbsDown "
            f"and ShadowDisagreement SLOs x {n_values} slice values (each plus other) = "
            f"{n_sliced * n_values}, at most {MAX_SLICE_GATES}"
        )
    slice_names = [sl.name for sl in spec.analysis.slices]
    for n in sorted({n for n in slice_names if slice_names.count(n) > 1}):
        errors.append(f"spec.analysis.slices: duplicate slice name {n!r}")
    judge = spec.router.shadow.judge.model
    if judge is not None and judge not in models:
        errors.append(f"spec.router.shadow.judge.model: model {judge!r} is not in spec.models")
    if judge is not None and spec.router.shadow.judge.type == "LLM":
        for i, r in enumerate(spec.routes):
            if r.candidate is not None and judge in (r.baseline, r.candidate):
                role = "baseline" if judge == r.baseline else "candidate"
                errors.append(
                    f"spec.router.shadow.judge.model: {judge!r} is the {role} of routes[{i}] "
                    f"(tier {r.tier!r}) and would judge its own answers; pick another model"
                )
    pf = spec.rollout.preflight
    if pf.enabled and spec.router.shadow.judge.mode != "Pairwise":
        errors.append(
            "spec.rollout.preflight.enabled: pre-flight needs router.shadow.judge.mode "
            "Pairwise (an LLM judge that compares the two answers); set enabled: false "
            "to skip pre-flight"
        )
    for i, rate in enumerate(pf.tiers):
        if rate.tier not in tiers:
            errors.append(
                f"spec.rollout.preflight.tiers[{i}].tier: {rate.tier!r} is not one of "
                f"classifier.tiers {tiers}"
            )
    return errors
