"""Closed vocabularies shared by the router, the operator, status and docs.

They are ``StrEnum`` so they serialise as plain strings in the CRD, in Prometheus
labels and in JSON, and so a typo in one component is a type error rather than a
silently unmatched label.
"""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """Where a RoutingPolicy's rollout is (``status.phase``)."""

    PENDING = "Pending"  # spec seen, nothing rolled out yet (or no candidate to roll out)
    PROGRESSING = "Progressing"  # a stage is in flight
    PAUSED = "Paused"  # waiting for a person (manual promotion, max step duration, no data)
    PROMOTED = "Promoted"  # candidate serves 100 % minus holdback
    ROLLED_BACK = "RolledBack"  # a gate failed or a person aborted; weight is 0
    FAILED = "Failed"  # the operator cannot use the spec (InvalidSpec); see conditions


class Verdict(StrEnum):
    """A gate's outcome. Four values, never collapsed: the most common complaint about
    canary tools is rolling back on noise, on low traffic or on an empty query result."""

    PASS = "Pass"  # enough evidence that the canary is within the allowed drop
    FAIL = "Fail"  # confident the canary is worse than allowed
    INCONCLUSIVE = "Inconclusive"  # data is flowing but evidence is not yet strong enough
    NO_DATA = "NoData"  # no samples, Prometheus unreachable or an empty vector


class Arm(StrEnum):
    """Which side of the split served a request."""

    CONTROL = "control"  # tier under canary, served by the baseline model
    CANARY = "canary"  # tier under canary, served by the candidate model
    HOLDBACK = "holdback"  # after promotion: the permanent control share on the baseline
    STABLE = "stable"  # tier with no rollout in progress (no candidate): just the baseline
    PINNED = "pinned"  # the client named a model explicitly
    #: pre-flight: the candidate also answered a request the baseline served (never
    #: shown to the user); only on the pairwise verdict counters
    MIRROR = "mirror"


class Signal(StrEnum):
    """Quality signals a gate can judge. Each is a rate of *bad* outcomes, so a higher
    value is worse and "allowed drop" means an allowed increase of the bad rate."""

    THUMBS_DOWN = "ThumbsDown"  # thumbs-down share of rated responses
    SHADOW_DISAGREEMENT = "ShadowDisagreement"  # judge disagrees with the baseline's answer
    ERROR_RATE = "ErrorRate"  # failed or escalated (served by a fallback) requests
    LATENCY = "Latency"  # share of requests slower than the latency objective
    CUSTOM = "Custom"  # a user's PromQL pair (bad, total)


class PromotionMode(StrEnum):
    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


class NoDataAction(StrEnum):
    """What to do once a stage has had no usable data for ``noData.after``."""

    PAUSE = "Pause"
    ROLLBACK = "Rollback"


class StickinessKey(StrEnum):
    """What a request's arm is hashed from (the assignment unit)."""

    #: the conversation: a session header, ``prompt_cache_key``, ``user``, else a
    #: fingerprint of the conversation's start (the default for new policies)
    SESSION = "session"
    #: the OpenAI request's ``user`` field (falls back to the header, then the request id)
    USER = "user"
    HEADER = "header"  # a request header (``rollout.stickiness.header``)
    REQUEST_ID = "requestId"  # no stickiness: every request is drawn afresh


class KeySource(StrEnum):
    """Where a request's stickiness key came from (the ``key_source`` metric label and
    decision-log field; the key itself is never exported)."""

    HEADER = "header"
    PROMPT_CACHE_KEY = "prompt_cache_key"
    USER = "user"
    FINGERPRINT = "fingerprint"  # hash of the system prompt head + first user message
    REQUEST_ID = "request_id"  # nothing stable: drawn afresh


class Tiering(StrEnum):
    """How a routed request's tier is chosen."""

    #: the highest tier among the conversation's user messages (each classified once)
    SESSION = "Session"
    #: the classifier input of this request alone (``classifier.input``)
    REQUEST = "Request"


class Action(StrEnum):
    """Manual actions carried by the ``tierguard.io/action`` annotation."""

    PROMOTE = "promote"
    ABORT = "abort"
    RETRY = "retry"
    PAUSE = "pause"
    RESUME = "resume"


class ConditionType(StrEnum):
    READY = "Ready"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    #: Set (True) when gate evaluations start more than one rollout.interval late: the
    #: operator is behind (backpressure); back to False once it has caught up.
    EVALUATION_DELAYED = "EvaluationDelayed"
    #: Whether the operator could read the referenced classifier ConfigMap (only for a
    #: ConfigMap classifier). False: its content is unknown and the rollout holds.
    CLASSIFIER_RESOLVED = "ClassifierResolved"
    #: The judge prompt ConfigMap was read and is a usable template (only with a
    #: judge.promptConfigMapRef). False: its content is unknown and the rollout holds.
    JUDGE_PROMPT_RESOLVED = "JudgePromptResolved"


class Reason(StrEnum):
    """``reason`` values on conditions, history entries and Events (CamelCase, as the
    Kubernetes API conventions ask)."""

    RECONCILED = "Reconciled"
    RECONCILE_FAILED = "ReconcileFailed"
    EVALUATION_LAGGING = "EvaluationLagging"
    ON_SCHEDULE = "OnSchedule"
    NO_CANDIDATE = "NoCandidate"
    ROLLOUT_STARTED = "RolloutStarted"
    STEP_ADVANCED = "StepAdvanced"
    BAKING = "Baking"
    WAITING_FOR_SAMPLES = "WaitingForSamples"
    GATES_INCONCLUSIVE = "GatesInconclusive"
    NO_DATA = "NoData"
    DATA_RESUMED = "DataResumed"
    PROMETHEUS_UNREACHABLE = "PrometheusUnreachable"
    GATE_FAILED = "GateFailed"
    ROLLED_BACK = "RolledBack"
    PROMOTED = "Promoted"
    AWAITING_PROMOTION = "AwaitingPromotion"
    MAX_STEP_DURATION_EXCEEDED = "MaxStepDurationExceeded"
    MANUAL_PROMOTE = "ManualPromote"
    MANUAL_ABORT = "ManualAbort"
    MANUAL_RETRY = "ManualRetry"
    MANUAL_PAUSE = "ManualPause"
    MANUAL_RESUME = "ManualResume"
    INVALID_ACTION = "InvalidAction"
    INVALID_SPEC = "InvalidSpec"  # the operator cannot use the spec (phase Failed)
    SPEC_VALID = "SpecValid"  # the spec is usable again; the previous phase continues
    CLASSIFIER_READ = "ClassifierRead"  # the classifier ConfigMap was read and digested
    #: the classifier ConfigMap cannot be read: content unknown, the rollout holds
    CLASSIFIER_UNKNOWN = "ClassifierUnknown"
    JUDGE_PROMPT_READ = "JudgePromptRead"  # the judge prompt ConfigMap was read and checked
    #: the judge prompt ConfigMap cannot be read or is not a usable template: the rollout holds
    JUDGE_PROMPT_UNKNOWN = "JudgePromptUnknown"
    #: a router replica does not report the target classifier digest: the stage holds
    ROUTERS_NOT_ON_TARGET = "RoutersNotOnTarget"
    STEPS_CHANGED = "StepsChanged"  # rollout.steps edited mid-rollout; placed on the new steps
    #: Progressing condition while pre-flight runs (the candidate serves nobody)
    PREFLIGHT = "PreFlight"
    #: the Progressing reason while a classifier change's decision shadow runs
    CLASSIFIER_SHADOW = "ClassifierShadow"
    CLASSIFIER_SHADOW_STARTED = "ClassifierShadowStarted"
    CLASSIFIER_SHADOW_FINISHED = "ClassifierShadowFinished"  # the candidate decides now
    #: the shadow found more traffic moving down than rollout.classifierShadow.maxDownShare
    CLASSIFIER_SHADOW_MOVED = "ClassifierShadowMoved"
    #: the Progressing reason while the classifier canary runs; its Events
    CLASSIFIER_CANARY = "ClassifierCanary"
    #: the classifier canary passed its last step: the new classifier decides for all
    CLASSIFIER_PROMOTED = "ClassifierPromoted"
    #: pre-flight (0 % exposure, mirrored requests judged pairwise) started
    PREFLIGHT_STARTED = "PreFlightStarted"
    PREFLIGHT_PASSED = "PreFlightPassed"  # pre-flight passed: the first weighted step
    PREFLIGHT_FAILED = "PreFlightFailed"  # pre-flight failed: rolled back, 0 users exposed
    #: pre-flight reached maxSpendUSD or maxDuration without a verdict: paused at 0 %
    PREFLIGHT_CAP_REACHED = "PreFlightCapReached"
    PREFLIGHT_SKIPPED = "PreFlightSkipped"  # pre-flight off or not possible (status says why)


class PreFlightState(StrEnum):
    """Where a revision's pre-flight stage is (``status.preflight.state``)."""

    RUNNING = "Running"  # mirrored requests are judged; the candidate serves nobody
    PASSED = "Passed"  # every tier passed; the weighted steps follow
    FAILED = "Failed"  # a tier failed: rolled back with 0 users exposed
    HELD = "Held"  # a cap was reached without a verdict: paused, never promoted
    SKIPPED = "Skipped"  # off, or no pairwise judge / SLO to run it with
