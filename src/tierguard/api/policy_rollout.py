"""How a candidate is rolled out (``spec.rollout``): steps, timing, stickiness, what
happens without data, pre-flight. Re-exported by policy.py."""

from __future__ import annotations

import itertools
from typing import Annotated

from pydantic import ConfigDict, Field, model_validator

from tierguard.api.classifierchange import ClassifierCanarySpec, ClassifierShadowSpec
from tierguard.api.durations import AtLeast, Duration, parse_duration
from tierguard.api.enums import NoDataAction, PromotionMode, StickinessKey
from tierguard.api.policy_base import ApiModel, cel
from tierguard.api.policy_limits import (
    DEFAULT_STEPS,
    MAX_STEPS,
    MIN_BAKE_TIME,
    MIN_INTERVAL,
    MIN_MAX_STEP_DURATION,
    MIN_NO_DATA_AFTER,
)
from tierguard.api.preflight import PreFlightSpec


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
                cel(
                    # has(): the CRD's own default ({}) is checked before defaulting
                    "!has(self.maxStepDuration) || !has(self.bakeTime) || "
                    "duration(self.maxStepDuration) > duration(self.bakeTime)",
                    "maxStepDuration must be longer than bakeTime (no step could ever advance)",
                    ".maxStepDuration",
                ),
                cel(
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
                cel(
                    "self.all(s, s > 0.0 && s <= 100.0)",
                    "every step must be within (0, 100]",
                ),
                cel(
                    "self.isSorted() && self.all(s, self.indexOf(s) == self.lastIndexOf(s))",
                    "steps must be strictly increasing",
                ),
                cel("self[size(self) - 1] == 100.0", "the last step must be 100"),
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
    classifier_canary: ClassifierCanarySpec = Field(
        default_factory=ClassifierCanarySpec,
        description=(
            "Classifier canary: after the decision shadow the new classifier decides for "
            "a share of sessions per step, judged per transition cell."
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
