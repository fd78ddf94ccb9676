"""``rollout.preflight``: the pre-flight stage, judged at 0 % exposure before the first
weighted step (split out of policy.py, which imports it).

During pre-flight no user is served by the candidate. The routers serve every request
from the baseline and, for a sample of stateless requests (hashed on the stickiness key,
at the tier's ``sampleRate``), also ask the candidate the same question (non-streaming,
the answer never shown) and have the policy's pairwise judge compare the two answers.
The tier's pairwise ShadowDisagreement gate decides: Pass → the first weighted step,
Fail → RolledBack with 0 users exposed, Inconclusive when a cap is reached → Paused.

Default (``enabled`` unset): pre-flight runs when the policy's judge is Pairwise, for
every tier with a candidate and a ShadowDisagreement SLO; otherwise it is skipped and
status says why. ``enabled: true`` without a Pairwise judge is refused at admission (the
stage could never pass); ``enabled: false`` skips it explicitly. See docs/concepts.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import ConfigDict, Field, JsonValue, model_validator

from tierguard.api.durations import AtLeast, Duration
from tierguard.api.policy_base import ApiModel, Fraction, Name, cel

MIN_PREFLIGHT_DURATION = "1m"


class PreFlightTierRate(ApiModel):
    """A tier's own mirror sample rate (a rare tier needs a higher one to reach
    ``minPairs`` within ``maxDuration``)."""

    tier: Name = Field(description="Tier name (one of classifier.tiers).")
    sample_rate: Fraction = Field(description="Share of the tier's stateless requests mirrored.")


_RULES: list[JsonValue] = [
    cel(
        "!has(self.tiers) || self.tiers.all(t, self.tiers.exists_one(o, o.tier == t.tier))",
        "at most one sample rate per tier",
        ".tiers",
    ),
]


class PreFlightSpec(ApiModel):
    """Pre-flight: the candidate answers mirrored requests, a pairwise judge compares its
    answers with the baseline's, and the paired sequential test decides before any user
    is served by the candidate."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _RULES})

    enabled: bool | None = Field(
        default=None,
        description=(
            "Unset: on when router.shadow.judge.mode is Pairwise (tiers without a "
            "ShadowDisagreement SLO skip it), else skipped with a status message. true: "
            "required (refused without a Pairwise judge). false: skipped."
        ),
    )
    sample_rate: Fraction | None = Field(
        default=None,
        description=(
            "Share of a tier's stateless requests (by hash of the stickiness key) also sent "
            "to the candidate and judged. Unset: sized per tier from its traffic so that "
            "it yields about targetPairsPerHour (all of a rare tier, a small share of a "
            "large one). See docs/statistics.md to size it."
        ),
    )
    target_pairs_per_hour: int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description=(
            "With sampleRate unset: the judged pairs an hour each tier's rate is sized for, "
            "from the tier's request rate the routers report (at most all its requests). "
            "1000: a candidate 1 point worse than its baseline with allowedDrop 0.03 needs "
            "~2,000-3,500 pairs to pass (the design effect of sticky users included), so it "
            "passes within a few hours, well inside maxDuration. See docs/statistics.md."
        ),
    )
    tiers: list[PreFlightTierRate] = Field(
        default_factory=list,
        max_length=8,
        description="Per-tier sampleRate overrides.",
    )
    max_spend_usd: float = Field(
        default=200.0,
        ge=0.0,
        le=1_000_000.0,
        alias="maxSpendUSD",
        description=(
            "Cap on what pre-flight costs (mirrored candidate calls and judge calls, from "
            "the policy's prices, all tiers together), a hard bound: every router reserves "
            "a call's worst-case cost against its share before starting it. Reached before "
            "a verdict: Paused, never promoted. 200: four tiers at targetPairsPerHour for "
            "the 8 h maxDuration at ~$0.0063 a pair (docs/statistics.md)."
        ),
    )
    max_duration: Annotated[Duration, AtLeast(MIN_PREFLIGHT_DURATION)] = Field(
        default="8h",
        description=(
            "Cap on pre-flight's length; reached before a verdict: Paused. See "
            "docs/statistics.md to size it with sampleRate and maxSpendUSD."
        ),
    )
    min_pairs: int = Field(
        default=200,
        ge=1,
        le=10_000_000,
        description="Judged pairs per tier before pre-flight may pass.",
    )

    @model_validator(mode="after")
    def _unique(self) -> PreFlightSpec:
        names = [t.tier for t in self.tiers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"rollout.preflight.tiers: more than one sample rate for {dup}")
        return self

    def rate(self, tier: str) -> float | None:
        """The tier's explicit sample rate; None: sized from its traffic."""
        for t in self.tiers:
            if t.tier == tier:
                return t.sample_rate
        return self.sample_rate
