"""How stages are judged (``spec.analysis``: SLOs, slices, confidence) and where the
operator reads the metrics they are judged on (``spec.prometheus``). Re-exported by
policy.py."""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from tierguard.api.durations import AtLeast, Duration
from tierguard.api.enums import Signal
from tierguard.api.policy_base import ApiModel, Fraction, Name, SecretKeyRef, cel
from tierguard.api.policy_limits import (
    CLASSIFIER_SLICE_KEY,
    MAX_SLICE_VALUES,
    MAX_SLICES,
    MAX_SLOS,
    MIN_LATENCY_OBJECTIVE,
    MIN_TIMEOUT,
    SLICE_NAME_PATTERN,
    SLICE_OTHER,
    SLICE_VALUE_PATTERN,
)


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
                cel(
                    "self.signal != 'Custom' || has(self.query)",
                    "signal Custom needs query.bad and query.total",
                    ".query",
                ),
                cel(
                    "self.signal != 'Latency' || has(self.latencyObjective)",
                    "signal Latency needs latencyObjective",
                    ".latencyObjective",
                ),
                cel(
                    "self.objective != 'Absolute' || has(self.threshold)",
                    "objective Absolute needs threshold",
                    ".threshold",
                ),
                cel(
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
                cel(
                    "self.values.all(v, v != 'other')",
                    "'other' is reserved: requests outside the declared values count as other",
                    ".values",
                ),
                cel(
                    "self.values.all(v, self.values.exists_one(w, w == v))",
                    "slice values must be unique",
                    ".values",
                ),
                cel(
                    "self.source == 'Classifier' || has(self.key)",
                    "key is required for source Metadata and Header",
                    ".key",
                ),
                cel(
                    f"self.source != 'Classifier' || !has(self.key) || "
                    f"self.key == '{CLASSIFIER_SLICE_KEY}'",
                    f"source Classifier reads the classifier's '{CLASSIFIER_SLICE_KEY}' head: "
                    "key must be unset or 'category'",
                    ".key",
                ),
            ]
        }
    )

    name: Annotated[str, Field(pattern=SLICE_NAME_PATTERN, max_length=32)] = Field(
        description="Slice name, as in status and events (category=billing_status)."
    )
    source: str = Field(
        default="Metadata",
        pattern=r"^(Metadata|Header|Classifier)$",
        description=(
            "Where the router reads the value: Metadata = the chat request's "
            "metadata.<key> (the OpenAI metadata field); Header = the request header <key>; "
            "Classifier = the category label the classifier's category head gives the "
            "request (the message that decided the tier; a model without a category head, "
            "or a turn nothing was classified for, counts as 'other')."
        ),
    )
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][-_.A-Za-z0-9]*$",
        description=(
            "The metadata key or header name (required for Metadata and Header). For "
            "Classifier: unset or 'category' (the classifier's category head)."
        ),
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
        if self.source != "Classifier" and self.key is None:
            raise ValueError(f"slices[{self.name}].key is required for source {self.source}")
        if self.source == "Classifier" and self.key not in (None, CLASSIFIER_SLICE_KEY):
            raise ValueError(
                f"slices[{self.name}]: source Classifier reads the classifier's "
                f"'{CLASSIFIER_SLICE_KEY}' head: key must be unset or '{CLASSIFIER_SLICE_KEY}'"
            )
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
                cel(
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
