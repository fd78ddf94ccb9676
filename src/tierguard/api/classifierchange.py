"""A classifier change rolled out like a model change: the spec of its first stage, the
*decision shadow*, and what status reports of it.

A new classifier (other model bytes, a threshold, the input mode …: whatever changes the
content digest, :mod:`tierguard.api.classifierdigest`) does not decide for anyone at
first. The routers load the stable classifier (the one that decided so far, kept as a
frozen copy) and the candidate; both score every classified request, the stable one
decides, and every router counts the pair (stable tier → candidate tier) in
``tierguard_classifier_transitions_total``. The operator reads the matrix from
Prometheus and reports, in ``status.classifierShadow``, the share of traffic that would
move (down and up a tier) and the projected cost change from the policy's prices. The
stage lasts at least ``minRequests`` counted requests *and* ``minDuration``; at
``maxDuration`` it ends with what it has (a Warning says so). Then the candidate
classifier decides and the revision's rollout continues (pre-flight or step 1).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import ConfigDict, Field

from tierguard.api.durations import AtLeast, Duration
from tierguard.api.policy_base import ApiModel, Fraction, cel


class ClassifierShadowSpec(ApiModel):
    """How long the decision shadow of a classifier change lasts."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.minDuration) || !has(self.maxDuration) || "
                    "duration(self.minDuration) <= duration(self.maxDuration)",
                    "rollout.classifierShadow.minDuration must not exceed maxDuration",
                )
            ]
        }
    )

    enabled: bool = Field(
        default=True,
        description=(
            "A classifier change starts with a decision shadow (both classifiers score, the "
            "stable one decides). false: the new classifier decides at once."
        ),
    )
    min_requests: int = Field(
        default=500,
        ge=0,
        le=10_000_000,
        description="Classified requests counted by both classifiers before it may end.",
    )
    min_duration: Duration = Field(
        default="10m", description="It lasts at least this long (whatever the traffic)."
    )
    max_duration: Annotated[Duration, AtLeast("1s")] = Field(
        default="2h",
        description=(
            "It ends at the latest after this long, with a Warning Event when fewer than "
            "minRequests were counted."
        ),
    )
    max_down_share: Fraction | None = Field(
        default=None,
        description=(
            "When set: a shadow that ends finding a larger share of requests moved to a "
            "cheaper tier pauses the rollout (reason ClassifierShadowMoved) before the new "
            "classifier decides for anyone, for a person to look: resume or promote hands "
            "it the decision, abort keeps the stable classifier. Unset: it only reports."
        ),
    )


class TransitionCell(ApiModel):
    """Requests the stable classifier put in ``from`` and the candidate in ``to``."""

    from_tier: str = Field(alias="from", description="The stable classifier's tier.")
    to_tier: str = Field(alias="to", description="The candidate classifier's tier.")
    requests: int = Field(ge=0, description="Requests counted in this cell.")


class ClassifierSnapshot(ApiModel):
    """A classifier as it decides tiers: what the stable arm of a change runs."""

    digest: str = Field(
        default="", description="Content digest of a ConfigMap classifier; empty: bundled."
    )
    key: str = Field(default="", description="The model's key in its frozen copy.")
    settings: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="The tier-deciding fields of spec.classifier (tiers, thresholds, input).",
    )


class ClassifierShadowStatus(ApiModel):
    """The decision shadow of the revision's classifier change."""

    running: bool = Field(description="Both classifiers score; the stable one decides.")
    stable_digest: str = Field(default="", description="The stable classifier's digest.")
    candidate_digest: str = Field(default="", description="The candidate's digest.")
    started_at: datetime = Field(description="When it started.")
    finished_at: datetime | None = Field(default=None, description="When it ended.")
    min_requests: int = Field(default=0, ge=0, description="Requests it needs.")
    earliest_end_at: datetime | None = Field(
        default=None, description="minDuration after the start."
    )
    requests: int = Field(default=0, ge=0, description="Requests counted by both.")
    moved_share: float | None = Field(
        default=None, description="Share of requests the candidate puts in another tier."
    )
    down_share: float | None = Field(
        default=None, description="Share the candidate moves to a cheaper (lower) tier."
    )
    up_share: float | None = Field(
        default=None, description="Share the candidate moves to a more capable tier."
    )
    projected_cost_change: float | None = Field(
        default=None,
        description=(
            "Relative change of the model bill if the candidate decided (-0.2: 20 % "
            "cheaper), from the prices (input + output per token) of each tier's model "
            "(its candidate, else its baseline) and the same tokens per request in every tier."
        ),
    )
    cells: list[TransitionCell] = Field(
        default_factory=list, description="The transition matrix (non-empty cells)."
    )
    held: bool = Field(
        default=False,
        description=(
            "It found more moved down than rollout.classifierShadow.maxDownShare and paused; "
            "a resume lets the new classifier decide."
        ),
    )
    message: str = Field(default="", max_length=2048, description="What it found.")


class ClassifierCanarySpec(ApiModel):
    """The classifier canary: after the decision shadow, the new classifier decides for a
    share of sessions, stage by stage (``rollout.steps``), before it decides for all."""

    enabled: bool = Field(
        default=True,
        description=(
            "After the decision shadow the new classifier decides for rollout.steps' share "
            "of sessions, judged per transition cell. false: it decides for all at once."
        ),
    )
    allowed_drop: Fraction = Field(
        default=0.05,
        description=(
            "Requests the new classifier moves down a tier are judged on quality: in each "
            "such cell, the share of thumbs-down among rated answers of the sessions it "
            "decides may exceed that of the same cell's sessions the stable classifier "
            "decides by at most this (an anytime-valid upper bound, alpha shared by the cells)."
        ),
    )
    max_cost_ratio: float | None = Field(
        default=None,
        ge=1.0,
        description=(
            "Requests the new classifier moves up a tier are judged on cost: in each such "
            "cell, the cost per request of the sessions it decides over that of the "
            "stable classifier's, once both have minSamplesPerArm requests (a point "
            "estimate). Unset: reported only."
        ),
    )


class CellGateStatus(ApiModel):
    """One transition cell of the classifier canary: the new classifier's sessions
    (candidate) against the stable classifier's (stable) within the same cell."""

    from_tier: str = Field(alias="from", description="The stable classifier's tier.")
    to_tier: str = Field(alias="to", description="The new classifier's tier.")
    direction: str = Field(description="Down (judged on quality) or Up (judged on cost).")
    verdict: str = Field(description="Pass, Fail, Inconclusive or NoData.")
    stable_requests: int = Field(default=0, ge=0, description="Requests the stable one decided.")
    candidate_requests: int = Field(default=0, ge=0, description="Requests the new one decided.")
    stable_bad_rate: float | None = Field(default=None, description="Thumbs-down share, stable.")
    candidate_bad_rate: float | None = Field(
        default=None, description="Thumbs-down share, new classifier."
    )
    upper_bound: float | None = Field(
        default=None, description="Down cells: upper bound on candidate - stable bad rate."
    )
    stable_cost_per_request: float | None = Field(default=None, description="USD, stable.")
    candidate_cost_per_request: float | None = Field(default=None, description="USD, new.")
    message: str = Field(default="", max_length=1024, description="Why this verdict.")


class ClassifierCanaryStatus(ApiModel):
    """The classifier canary of this revision's classifier change."""

    running: bool = Field(description="The new classifier decides for `weight` % of sessions.")
    step: int = Field(default=0, ge=0, description="Index into rollout.steps.")
    weight: float = Field(default=0.0, ge=0.0, le=100.0, description="Share of sessions, %.")
    step_started_at: datetime | None = Field(default=None, description="When this step began.")
    earliest_advance_at: datetime | None = Field(default=None, description="Bake time end.")
    cells: list[CellGateStatus] = Field(default_factory=list, description="Per-cell verdicts.")
    gate_state: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description="Sequential-test state per cell (internal; do not edit).",
    )
    message: str = Field(default="", max_length=2048, description="What it is doing or did.")
