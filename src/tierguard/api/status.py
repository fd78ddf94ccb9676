"""RoutingPolicy status: what SREs read with ``kubectl get``, ``kubectl describe`` and
``kubectl tierguard status``, and the only place rollout state lives (the operator keeps
nothing in memory it cannot rebuild from here after a restart).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from tierguard.api.classifierchange import (
    ClassifierCanaryStatus,
    ClassifierShadowStatus,
    ClassifierSnapshot,
)
from tierguard.api.enums import ConditionType, Phase, PreFlightState, Verdict
from tierguard.api.policy import ApiModel
from tierguard.api.stickiness import StickinessStatus

MAX_HISTORY = 20
#: Manual actions remembered in ``status.handledActions`` (an old annotation that GitOps
#: re-applies is recognised as long as it is among them).
MAX_HANDLED_ACTIONS = 32


class Condition(ApiModel):
    """Standard Kubernetes condition (metav1.Condition shape)."""

    type: ConditionType = Field(description="Ready, Progressing or Degraded.")
    status: str = Field(pattern=r"^(True|False|Unknown)$", description="True, False or Unknown.")
    reason: str = Field(max_length=1024, description="CamelCase machine-readable reason.")
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: datetime = Field(description="When status last changed.")
    observed_generation: int = Field(default=0, ge=0, description="Spec generation judged.")


class ArmSample(ApiModel):
    """Evidence from one arm for one signal."""

    samples: int = Field(default=0, ge=0, description="Outcomes counted in this rollout.")
    bad: int = Field(default=0, ge=0, description="Bad outcomes among them.")
    rate: float | None = Field(default=None, description="bad / samples (null when no samples).")


class JudgeHealthStatus(ApiModel):
    """A pairwise judge's health on one gate (ShadowDisagreement with judge mode
    Pairwise), counted since the gate started (or since the watch window started)."""

    judged: int = Field(default=0, description="Pairs with a verdict (both orders answered).")
    worse: int = Field(default=0, description="Pairs where the canary's answer was worse.")
    better: int = Field(default=0, description="Pairs where the canary's answer was better.")
    ties: int = Field(
        default=0, description="Ties, including pairs whose verdict changed with the order."
    )
    inconsistent: int = Field(
        default=0, description="Pairs whose verdict changed with the order of the answers."
    )
    errors: int = Field(
        default=0, description="Shadowed requests without a verdict (missing data)."
    )
    unanswered: int = Field(
        default=0,
        description=(
            "Pre-flight: mirrored requests the candidate failed to answer while the "
            "baseline did; counted in worse (a loss), not in errors."
        ),
    )
    order_inconsistency_rate: float | None = Field(
        default=None, description="inconsistent / judged."
    )
    error_rate: float | None = Field(default=None, description="errors / (judged + errors).")
    healthy: bool = Field(
        default=True,
        description=(
            "False once the judge is confidently beyond a limit of the judge spec: the "
            "lower 95 % anytime-valid confidence bound of the order-inconsistency rate "
            "exceeds maxOrderInconsistency, or that of the error rate exceeds maxErrorRate; "
            "the gate is then Inconclusive (JudgeUnhealthy) and never passes. True does "
            "not mean shown healthy: a Pass also needs both upper bounds within the "
            "limits, and until they are a would-be Pass is Inconclusive "
            "(JudgeHealthUndecided). A Fail stands either way."
        ),
    )


class SignalStatus(ApiModel):
    """One gate: a (tier, signal) pair, or a (tier, slice value, signal) slice gate."""

    signal: str = Field(description="Signal name (ThumbsDown, ErrorRate, ...).")
    slice: str | None = Field(
        default=None,
        max_length=128,
        description=(
            "For a slice gate (analysis.slices): the slice and value it judges, as "
            "name=value (category=billing_status); unset for the tier's own gate."
        ),
    )
    verdict: Verdict = Field(description="Pass, Fail, Inconclusive or NoData.")
    control: ArmSample = Field(default_factory=ArmSample, description="Control (or holdback) arm.")
    canary: ArmSample = Field(default_factory=ArmSample, description="Canary arm.")
    difference_upper_bound: float | None = Field(
        default=None,
        description=(
            "Anytime-valid upper confidence bound on canary bad rate minus control bad rate "
            "(or on the canary's bad rate for an Absolute objective)."
        ),
    )
    allowed: float | None = Field(
        default=None, description="The allowed drop (or absolute threshold) it is held to."
    )
    e_value: float | None = Field(
        default=None, description="Evidence against the canary; Fail at or above threshold."
    )
    e_value_threshold: float | None = Field(default=None, description="Rollback threshold.")
    design_effect: float | None = Field(
        default=None,
        description=(
            "Variance inflation from per-user correlation, estimated from the per-cluster "
            "counters (1 = requests behave as independent); the evidence is divided by it."
        ),
    )
    message: str = Field(default="", max_length=2048, description="Why this verdict.")
    judge: JudgeHealthStatus | None = Field(
        default=None,
        description=(
            "Pairwise judge gates only: win/tie/loss counts and the judge's health. For "
            "these gates canary.bad counts the pairs the canary lost and control.bad the "
            "pairs the baseline lost, over the same judged pairs."
        ),
    )


class TierStatus(ApiModel):
    """Verdict of one tier: the worst of its signals."""

    tier: str = Field(description="Tier name.")
    verdict: Verdict = Field(description="Fail if any signal fails, Pass only if all pass.")
    signals: list[SignalStatus] = Field(default_factory=list, description="Per-signal gates.")


class HistoryEntry(ApiModel):
    """One phase or step transition."""

    time: datetime = Field(description="When it happened.")
    phase: Phase = Field(description="Phase after the transition.")
    step: int = Field(ge=0, description="Step index after the transition (0-based).")
    weight: float = Field(description="Canary weight after the transition, percent.")
    reason: str = Field(description="Reason (CamelCase).")
    message: str = Field(default="", max_length=2048, description="Detail.")


class HandledAction(ApiModel):
    """The last manual action the operator carried out, so a nonce never acts twice."""

    action: str = Field(description="promote, abort, retry, pause or resume.")
    nonce: str = Field(default="", max_length=256, description="Nonce from the annotation.")
    time: datetime = Field(description="When it was handled.")
    result: str = Field(default="", max_length=1024, description="What it did, or why not.")
    generation: int = Field(
        default=0,
        ge=0,
        description=(
            "metadata.generation when it was handled (an action without a nonce is handled "
            "once per generation)."
        ),
    )


class PreFlightTierStatus(ApiModel):
    """One tier's pre-flight gate: the pairwise verdicts on mirrored requests."""

    tier: str = Field(description="Tier name.")
    verdict: Verdict = Field(description="The tier's pairwise gate verdict.")
    sample_rate: float = Field(default=0.0, description="Share of its requests mirrored.")
    judge: JudgeHealthStatus = Field(
        default_factory=JudgeHealthStatus,
        description="Win/tie/loss counts (from the candidate's side) and judge health.",
    )
    message: str = Field(default="", max_length=2048, description="Why this verdict.")


class PreFlightStatus(ApiModel):
    """The revision's pre-flight stage (0 % exposure, mirrored requests judged pairwise)."""

    state: PreFlightState = Field(description="Running, Passed, Failed, Held or Skipped.")
    started_at: datetime | None = Field(default=None, description="When it started.")
    finished_at: datetime | None = Field(
        default=None, description="When it passed, failed or was skipped."
    )
    spend_usd: float = Field(
        default=0.0,
        ge=0.0,
        alias="spendUSD",
        description="What it cost so far: mirrored candidate calls and judge calls.",
    )
    max_spend_usd: float = Field(
        default=0.0, ge=0.0, alias="maxSpendUSD", description="The spend cap."
    )
    tiers: list[PreFlightTierStatus] = Field(
        default_factory=list, description="Per-tier pairwise verdicts."
    )
    message: str = Field(default="", max_length=2048, description="What it is doing or did.")


class RoutingPolicyStatus(ApiModel):
    """Observed state of the rollout."""

    observed_generation: int = Field(default=0, ge=0, description="Last spec generation seen.")
    phase: Phase = Field(default=Phase.PENDING, description="Rollout phase.")
    revision: str = Field(
        default="",
        description="Hash of what is being rolled out (candidates, classifier, prompts).",
    )
    classifier_digest: str = Field(
        default="",
        description=(
            "Content digest of the ConfigMap classifier the routers run (model bytes and "
            "tier-deciding settings); the routers mount its immutable copy "
            "<policy>-classifier-<digest[:10]>. Empty for the bundled model."
        ),
    )
    judge_prompt_digest: str = Field(
        default="",
        description=(
            "Content digest of the judge prompt template in the ConfigMap named by "
            "router.shadow.judge.promptConfigMapRef (part of the revision); the routers "
            "mount its immutable copy <policy>-judge-prompt-<digest[:10]>. Empty for the "
            "built-in template."
        ),
    )
    stable_classifier: ClassifierSnapshot | None = Field(
        default=None,
        description=(
            "The classifier that decides for users: the stable arm of a classifier change "
            "(unset until the operator first read the classifier)."
        ),
    )
    classifier_shadow: ClassifierShadowStatus | None = Field(
        default=None,
        description=(
            "The decision shadow of this revision's classifier change (unset: the revision "
            "did not change the classifier). While it runs the stable classifier decides and "
            "the model split stays as it was before the change."
        ),
    )
    classifier_canary: ClassifierCanaryStatus | None = Field(
        default=None,
        description=(
            "The classifier canary of this revision's classifier change, after its decision "
            "shadow: the new classifier decides for a share of sessions; gates per "
            "transition cell. The model split stays as it was before the change until it "
            "is over."
        ),
    )
    rolled_back_revision: str = Field(
        default="",
        description="Revision that was rolled back; it is retried only by a retry action.",
    )
    attempt: int = Field(
        default=0,
        ge=0,
        description=(
            "Rollout attempt of this revision: 0 at first, +1 per retry. Each attempt hashes "
            "users into arms with its own split salt, so a retry does not judge the candidate "
            "on the same users again."
        ),
    )
    stickiness: StickinessStatus | None = Field(
        default=None,
        description=(
            "The session key the routers split users into arms by (and the classifier "
            "canary its sessions): the effective key after defaults, the header it reads "
            "and the sources in the order the routers try them."
        ),
    )
    step: int = Field(default=0, ge=0, description="Current step index (0-based).")
    steps: int = Field(default=0, ge=0, description="Number of steps.")
    step_display: str = Field(default="", description="Step as 'n/total' for kubectl get.")
    canary_weight: float = Field(
        default=0.0, ge=0.0, le=100.0, description="Canary weight, percent."
    )
    step_started_at: datetime | None = Field(default=None, description="When this step began.")
    earliest_advance_at: datetime | None = Field(
        default=None, description="Bake time end: the earliest the step may advance."
    )
    last_evaluated_at: datetime | None = Field(
        default=None,
        description=(
            "Last gate evaluation that changed the status. An evaluation that finds nothing "
            "new is not written (an idle policy causes no API writes); the operator keeps "
            "its schedule in memory and evaluates at once after a restart."
        ),
    )
    no_data_since: datetime | None = Field(
        default=None, description="Since when the gates have had no usable data."
    )
    preflight: PreFlightStatus | None = Field(
        default=None,
        description=(
            "This revision's pre-flight stage (unset before the first revision). While "
            "it runs the canary weight is 0: no user is served by the candidate."
        ),
    )
    tiers: list[TierStatus] = Field(default_factory=list, description="Per-tier verdicts.")
    verdict_summary: str = Field(
        default="", description="Per-tier verdicts at a glance, e.g. 'simple=Pass'."
    )
    message: str = Field(default="", max_length=4096, description="What is happening now.")
    conditions: list[Condition] = Field(
        default_factory=list, description="Ready, Progressing, Degraded."
    )
    history: list[HistoryEntry] = Field(
        default_factory=list,
        max_length=MAX_HISTORY,
        description=f"Last {MAX_HISTORY} transitions, oldest first.",
    )
    last_handled_action: HandledAction | None = Field(
        default=None, description="Last manual action handled."
    )
    handled_actions: list[HandledAction] = Field(
        default_factory=list,
        max_length=MAX_HANDLED_ACTIONS,
        description=(
            f"The last {MAX_HANDLED_ACTIONS} manual actions handled, oldest first. An "
            "(action, nonce) listed here never acts again, so an annotation GitOps re-applies "
            "(Argo CD self-heal) is ignored whatever order annotations come back in."
        ),
    )
    gate_state: dict[str, Any] = Field(
        default_factory=dict,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
        description=(
            "Sequential-test state (counter readings and running evidence) so a restarted "
            "operator resumes the same evaluation. Internal; do not edit."
        ),
    )
