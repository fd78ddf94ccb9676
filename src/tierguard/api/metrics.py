"""Metric names and labels: the contract between the router (which exports them), the
operator (which gates on them), the alerts, the dashboard and docs/metrics.md (generated
from this module by ``tierguard gen-docs``).

Naming follows Prometheus conventions: a ``tierguard_`` namespace, base units
(``_seconds``), ``_total`` on counters. Labels are low-cardinality: never a user id,
prompt or request id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

NAMESPACE: Final = "tierguard"

# Label names -----------------------------------------------------------------
POLICY: Final = "policy"
TIER: Final = "tier"
ARM: Final = "arm"
MODEL: Final = "model"
OUTCOME: Final = "outcome"
REASON: Final = "reason"
RATING: Final = "rating"
VERDICT: Final = "verdict"
KIND: Final = "kind"
FROM_MODEL: Final = "from_model"
TO_MODEL: Final = "to_model"
STREAM: Final = "stream"
#: User cluster of a request: its split bucket mod CLUSTERS. A bucket holds whole users
#: (bucket = sha256(salt + user) mod 10000), so clusters are disjoint sets of users; the
#: operator estimates the per-user correlation (design effect) from the spread of the
#: gate counters between clusters. CLUSTER_NONE for requests without a bucket (pinned).
CLUSTER: Final = "cluster"
CLUSTERS: Final = 16
CLUSTER_NONE: Final = "none"
KEY_SOURCE: Final = "key_source"
FROM_TIER: Final = "from_tier"
TO_TIER: Final = "to_tier"
#: classifier_info: the classifier's content digest and the config revision (one series
#: per router process at a time)
DIGEST: Final = "digest"
REVISION: Final = "revision"
#: router_overhead_seconds{phase}: where the router's own time per request goes
PHASE: Final = "phase"
#: slice_*_total{slice, slice_value}: the slice's name (analysis.slices[].name) and the
#: request's value for it, one of the slice's declared values or SLICE_OTHER (so at most
#: policy.MAX_SLICE_VALUES + 1 values per slice and policy.MAX_SLICES slices).
SLICE: Final = "slice"
SLICE_VALUE: Final = "slice_value"
SLICE_OTHER: Final = "other"

ROUTE_LABELS: Final = (POLICY, TIER, ARM, MODEL)

# Label values ------------------------------------------------------------------
#: requests_total{outcome}: ok = served by the first model of the chain; escalated =
#: served by a fallback or hedge; error = nothing served (client got an error), or a
#: stream the upstream broke, errored or cut short after its first chunk.
OUTCOME_OK: Final = "ok"
OUTCOME_ESCALATED: Final = "escalated"
OUTCOME_ERROR: Final = "error"
OUTCOMES: Final = (OUTCOME_OK, OUTCOME_ESCALATED, OUTCOME_ERROR)

RATING_UP: Final = "up"
RATING_DOWN: Final = "down"

VERDICT_AGREE: Final = "agree"
VERDICT_DISAGREE: Final = "disagree"
VERDICT_ERROR: Final = "error"  # the shadow call or the judge failed: not a quality signal
#: shadow_pairwise_total{verdict}: the pairwise judge, asked in both orders, found the
#: canary's answer worse, better or as good (tie) in both; ``inconsistent``: the verdict
#: changed with the order (the gate counts it as a tie; its share is judge health);
#: ``error``: the shadow call or a judge call failed, timed out or was unreadable
#: (missing data, not a loss).
VERDICT_WORSE: Final = "worse"
VERDICT_BETTER: Final = "better"
VERDICT_TIE: Final = "tie"
VERDICT_INCONSISTENT: Final = "inconsistent"
#: pre-flight only: the candidate failed (error, timeout) to answer a mirrored request
#: the baseline answered -- its excess failures over the baseline, a loss for the gate
VERDICT_UNANSWERED: Final = "unanswered"
PAIRWISE_VERDICTS: Final = (
    VERDICT_WORSE,
    VERDICT_BETTER,
    VERDICT_TIE,
    VERDICT_INCONSISTENT,
    VERDICT_ERROR,
    VERDICT_UNANSWERED,
)

#: upstream_errors_total{reason}. ``stream_error``: a 200 stream carried an error event;
#: ``truncated``: a stream ended after some content with no finish_reason and no [DONE];
#: ``protocol``: an unreadable answer, or one over ``server.maxResponseBytes``.
ERROR_REASONS: Final = (
    "connect",
    "timeout",
    "rate_limited",
    "server_error",
    "client_error",
    "protocol",
    "stream_error",
    "truncated",
)

#: escalations_total{reason}: the serving model failed, or the latency budget passed
#: without a first byte (a hedge was started).
ESCALATION_ERROR: Final = "error"
ESCALATION_BUDGET: Final = "budget"
#: the prompt did not fit the serving model's context window; decided before any call,
#: so the request's outcome stays ok (not an error for the ErrorRate gate)
ESCALATION_CONTEXT: Final = "context_window"

#: tokens_total{kind}: prompt and completion as billed; cached = the part of the prompt
#: the provider served from its prompt cache (usage.prompt_tokens_details.cached_tokens),
#: so the cached-token share is cached / prompt.
KIND_PROMPT: Final = "prompt"
KIND_COMPLETION: Final = "completion"
KIND_CACHED: Final = "cached"
#: preflight_spend_usd_total{kind}: the mirrored candidate call or the judge's calls
KIND_MIRROR: Final = "mirror"
KIND_JUDGE: Final = "judge"

#: stateful_turns_total{outcome}: a turn without new user text (tool results, assistant
#: last) served by the model that issued its tool call (locked), by a same-or-higher tier
#: model because that one failed (fallback), or routed again from the conversation
#: because no verifiable tool-call id named the issuer (unlocked).
STATEFUL_LOCKED: Final = "locked"
STATEFUL_FALLBACK: Final = "fallback"
STATEFUL_UNLOCKED: Final = "unlocked"

#: classifier_cache_total{outcome}
CACHE_HIT: Final = "hit"
CACHE_MISS: Final = "miss"

#: hedges_total{outcome}: which side of a hedged request won.
HEDGE_PRIMARY: Final = "primary"
HEDGE_HEDGE: Final = "hedge"

#: feedback_rejected_total{reason}
FEEDBACK_REJECT_REASONS: Final = ("malformed", "bad_signature", "expired", "wrong_policy")

#: config_reloads_total{outcome}
RELOAD_OK: Final = "ok"
RELOAD_ERROR: Final = "error"

#: router_overhead_seconds{phase}: parse = authorise, read and parse the request body;
#: classify = the classifier model itself (cache lookups excluded); route = the rest of
#: planning (session key, split, chain) and building each upstream body; write = signing,
#: rewriting and serialising the answer for the client, and accounting (metrics, decision
#: log). Upstream time (waiting for a model, and the client's network) is excluded.
PHASE_PARSE: Final = "parse"
PHASE_CLASSIFY: Final = "classify"
PHASE_ROUTE: Final = "route"
PHASE_WRITE: Final = "write"
PHASES: Final = (PHASE_PARSE, PHASE_CLASSIFY, PHASE_ROUTE, PHASE_WRITE)

TIER_PINNED: Final = "pinned"  # tier label when the client named a model itself
TIER_UNCLASSIFIED: Final = "unclassified"  # request rejected before classification

#: Latency buckets (seconds). SLO latency objectives are added to these by the router
#: so the "share over objective" signal is exact.
LATENCY_BUCKETS: Final = (
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    1.5,
    2.0,
    3.0,
    5.0,
    8.0,
    13.0,
    20.0,
    30.0,
    60.0,
)
CLASSIFIER_BUCKETS: Final = (0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1)
#: Router overhead buckets (seconds): 20 µs to 100 ms, the router's own time per phase.
OVERHEAD_BUCKETS: Final = (
    0.00002,
    0.00005,
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.1,
)


@dataclass(frozen=True)
class MetricDef:
    """One exported metric."""

    name: str  # full name as scraped (counters include the _total suffix)
    type: Literal["counter", "histogram", "gauge"]
    help: str
    labels: tuple[str, ...]

    @property
    def base(self) -> str:
        """Name without ``_total``, as prometheus_client wants counters declared."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name


REQUESTS: Final = MetricDef(
    f"{NAMESPACE}_requests_total",
    "counter",
    "Chat completion requests by the route that served them. outcome: ok (first model), "
    "escalated (a fallback or hedge served it), error (nothing served). cluster: the "
    "user cluster (split bucket mod 16).",
    (*ROUTE_LABELS, OUTCOME, CLUSTER),
)
REQUEST_DURATION: Final = MetricDef(
    f"{NAMESPACE}_request_duration_seconds",
    "histogram",
    "End-to-end request latency as the client saw it (to the last byte), fallbacks included.",
    ROUTE_LABELS,
)
TIME_TO_FIRST_TOKEN: Final = MetricDef(
    f"{NAMESPACE}_time_to_first_token_seconds",
    "histogram",
    "Time from request arrival to the first byte of the answer sent to the client.",
    ROUTE_LABELS,
)
TOKENS: Final = MetricDef(
    f"{NAMESPACE}_tokens_total",
    "counter",
    "Tokens billed by upstreams, kind prompt, completion or cached (the part of the prompt "
    "served from the provider's prompt cache; shadow calls excluded).",
    (*ROUTE_LABELS, KIND),
)
COST: Final = MetricDef(
    f"{NAMESPACE}_cost_usd_total",
    "counter",
    "Upstream cost in US dollars from the policy's prices (shadow calls excluded).",
    ROUTE_LABELS,
)
SHADOW_COST: Final = MetricDef(
    f"{NAMESPACE}_shadow_cost_usd_total",
    "counter",
    "Cost in US dollars of shadow evaluation calls (the price of measuring).",
    (POLICY, TIER, MODEL),
)
UPSTREAM_ERRORS: Final = MetricDef(
    f"{NAMESPACE}_upstream_errors_total",
    "counter",
    "Failed upstream attempts by model and reason (connect, timeout, rate_limited, "
    "server_error, client_error, protocol, stream_error, truncated).",
    (POLICY, MODEL, REASON),
)
ESCALATIONS: Final = MetricDef(
    f"{NAMESPACE}_escalations_total",
    "counter",
    "Moves to the next model of a fallback chain. reason: error, budget (a hedge started "
    "because the latency budget passed without a first byte) or context_window (the "
    "prompt did not fit the serving model; decided before the call, outcome stays ok).",
    (POLICY, TIER, ARM, FROM_MODEL, TO_MODEL, REASON),
)
HEDGES: Final = MetricDef(
    f"{NAMESPACE}_hedges_total",
    "counter",
    "Hedged requests by which side won: primary or hedge.",
    (POLICY, TIER, ARM, OUTCOME),
)
FEEDBACK: Final = MetricDef(
    f"{NAMESPACE}_feedback_total",
    "counter",
    "Client feedback attributed through signed decision ids. rating: up or down. cluster: "
    "the user cluster of the rated answer.",
    (*ROUTE_LABELS, RATING, CLUSTER),
)
FEEDBACK_REJECTED: Final = MetricDef(
    f"{NAMESPACE}_feedback_rejected_total",
    "counter",
    "Feedback refused, reason: malformed, bad_signature, expired, wrong_policy.",
    (POLICY, REASON),
)
SHADOW_JUDGEMENTS: Final = MetricDef(
    f"{NAMESPACE}_shadow_judgements_total",
    "counter",
    "Shadow evaluations of canary answers against the baseline. verdict: agree, disagree, "
    "error (shadow call or judge failed; not counted as quality). cluster: the user "
    "cluster.",
    (*ROUTE_LABELS, VERDICT, CLUSTER),
)
SHADOW_PAIRWISE: Final = MetricDef(
    f"{NAMESPACE}_shadow_pairwise_total",
    "counter",
    "Pairwise shadow judgements (judge mode Pairwise) of canary answers against the "
    "baseline's, the judge asked in both orders. verdict: worse, better, tie (the canary's "
    "answer, the same in both orders), inconsistent (the verdict changed with the order: "
    "a tie for the gate, a judge-health figure), error (shadow call or judge failed, timed "
    "out or replied unreadably: missing data), unanswered (pre-flight, arm mirror: the "
    "candidate failed to answer a request the baseline answered; a loss). cluster: the "
    "user cluster.",
    (*ROUTE_LABELS, VERDICT, CLUSTER),
)
PREFLIGHT_SPEND: Final = MetricDef(
    f"{NAMESPACE}_preflight_spend_usd_total",
    "counter",
    "Cost in US dollars of pre-flight, from the policy's prices. kind: mirror (the "
    "candidate's answer to a mirrored request, never shown to the user) or judge (the "
    "pairwise judge's two calls). The operator holds pre-flight at rollout.preflight."
    'maxSpendUSD. Pre-flight verdicts are shadow_pairwise_total{arm="mirror"}.',
    (POLICY, TIER, KIND),
)
PREFLIGHT_SHED: Final = MetricDef(
    f"{NAMESPACE}_preflight_shed_total",
    "counter",
    "Sampled pre-flight mirrors not started because the bounded mirror queue was full "
    "(the primary path is never slowed by mirrored work) or because the call's worst-case "
    "cost did not fit in this router's share of maxSpendUSD (also counted when the judge's "
    "calls did not fit; that pair's verdict is error).",
    (POLICY, TIER),
)
CLASSIFIER_DURATION: Final = MetricDef(
    f"{NAMESPACE}_classifier_duration_seconds",
    "histogram",
    "Time the classifier model spent on one request in-process (per-message cache "
    "lookups excluded; requests answered from the cache alone are not observed).",
    (POLICY,),
)
CANARY_WEIGHT: Final = MetricDef(
    f"{NAMESPACE}_canary_weight_percent",
    "gauge",
    "Canary weight the router currently applies, per tier (from its loaded config).",
    (POLICY, TIER),
)
CONFIG_RELOADS: Final = MetricDef(
    f"{NAMESPACE}_config_reloads_total",
    "counter",
    "Configuration reloads by outcome: ok or error (the old config stays active).",
    (POLICY, OUTCOME),
)
INVALID_REQUESTS: Final = MetricDef(
    f"{NAMESPACE}_invalid_requests_total",
    "counter",
    "Requests refused before routing, by OpenAI error code.",
    (POLICY, REASON),
)

SESSION_KEYS: Final = MetricDef(
    f"{NAMESPACE}_session_keys_total",
    "counter",
    "Routed requests by where their stickiness key came from (key_source: header, "
    "prompt_cache_key, user, fingerprint, request_id). The key itself is never exported.",
    (POLICY, KEY_SOURCE),
)
SESSION_TIER_CHANGES: Final = MetricDef(
    f"{NAMESPACE}_session_tier_changes_total",
    "counter",
    "Conversations whose tier changed with their newest user message, by (from_tier, "
    "to_tier). With session tiering only upward moves exist.",
    (POLICY, FROM_TIER, TO_TIER),
)
STATEFUL_TURNS: Final = MetricDef(
    f"{NAMESPACE}_stateful_turns_total",
    "counter",
    "Turns without new user text (tool results, assistant last) by outcome: locked (the "
    "model that issued the tool call), fallback (it failed; a same-or-higher tier model "
    "served), unlocked (no verifiable tool-call id; routed again from the conversation).",
    (*ROUTE_LABELS, OUTCOME),
)
UNSAFE_SWITCHES: Final = MetricDef(
    f"{NAMESPACE}_unsafe_switches_total",
    "counter",
    "Stateful turns first sent to a model other than the one that issued their tool "
    "call, or served by a lower tier than it. Must stay 0.",
    (POLICY, TIER),
)
CLASSIFIER_CACHE: Final = MetricDef(
    f"{NAMESPACE}_classifier_cache_total",
    "counter",
    "Per-message classifier cache lookups (session tiering), outcome hit or miss.",
    (POLICY, OUTCOME),
)
ROUTER_OVERHEAD: Final = MetricDef(
    f"{NAMESPACE}_router_overhead_seconds",
    "histogram",
    "Time the router itself spent on one chat request, upstream time excluded, by phase: "
    "parse, classify, route, write (label values below). The sum over phases is the time "
    "in the router's own code; aiohttp's HTTP handling of both connections comes on top "
    "(bench/router/run.py sets the two side by side).",
    (POLICY, PHASE),
)

#: The slice gate counters: the gate counters again, once per declared slice of the
#: policy, without ``model`` (the tier and arm say which route; the series count per
#: router is tiers x 3 arms x sum over slices of (values + 1) x outcomes x 17 clusters).
_SLICE_LABELS: Final = (POLICY, TIER, ARM, SLICE, SLICE_VALUE)
SLICE_REQUESTS: Final = MetricDef(
    f"{NAMESPACE}_slice_requests_total",
    "counter",
    "Routed chat completion requests per declared slice (analysis.slices): each request "
    "is counted once per slice, under its value for it (or other). outcome and cluster as "
    "in requests_total.",
    (*_SLICE_LABELS, OUTCOME, CLUSTER),
)
SLICE_FEEDBACK: Final = MetricDef(
    f"{NAMESPACE}_slice_feedback_total",
    "counter",
    "Client feedback per declared slice of the rated answer (the slice values travel in "
    "the signed decision id). rating and cluster as in feedback_total.",
    (*_SLICE_LABELS, RATING, CLUSTER),
)
SLICE_SHADOW_JUDGEMENTS: Final = MetricDef(
    f"{NAMESPACE}_slice_shadow_judgements_total",
    "counter",
    "Shadow evaluations (judge mode Agreement) per declared slice of the judged request. "
    "verdict and cluster as in shadow_judgements_total.",
    (*_SLICE_LABELS, VERDICT, CLUSTER),
)
CLASSIFIER_INFO: Final = MetricDef(
    f"{NAMESPACE}_classifier_info",
    "gauge",
    "1 for the classifier this router runs: digest = its content digest (model bytes and "
    "tier-deciding settings, computed from what it loaded), revision = the config's "
    "revision. The operator counts a stage only while every router reports the target.",
    (POLICY, DIGEST, REVISION),
)

CLASSIFIER_TRANSITIONS: Final = MetricDef(
    f"{NAMESPACE}_classifier_transitions_total",
    "counter",
    "Decision shadow of a classifier change: classified requests by (from_tier = the stable "
    "classifier's tier, which decides; to_tier = the candidate classifier's tier for the same "
    "request). Only while a classifier change is in its decision shadow; revision = the "
    "config's revision (it names the candidate). At most tiers^2 series per revision, all "
    "created at 0 when the candidate is loaded.",
    (POLICY, REVISION, FROM_TIER, TO_TIER),
)

#: classifier canary: which classifier decided the request's tier
DECIDER: Final = "decider"
DECIDER_STABLE: Final = "stable"
DECIDER_CANDIDATE: Final = "candidate"
DECIDERS: Final = (DECIDER_STABLE, DECIDER_CANDIDATE)
CLASSIFIER_CELL_REQUESTS: Final = MetricDef(
    f"{NAMESPACE}_classifier_cell_requests_total",
    "counter",
    "Classifier canary: routed requests by transition cell (from_tier = the stable "
    "classifier's tier, to_tier = the candidate's), by which classifier decided (decider: "
    "stable or candidate, sticky per session) and outcome. tiers^2 x 2 x outcomes series.",
    (POLICY, FROM_TIER, TO_TIER, DECIDER, OUTCOME),
)
CLASSIFIER_CELL_FEEDBACK: Final = MetricDef(
    f"{NAMESPACE}_classifier_cell_feedback_total",
    "counter",
    "Classifier canary: explicit feedback on answers of a transition cell by decider and "
    "rating (attributed through the signed decision id, like feedback_total).",
    (POLICY, FROM_TIER, TO_TIER, DECIDER, RATING),
)
CLASSIFIER_CELL_COST: Final = MetricDef(
    f"{NAMESPACE}_classifier_cell_cost_usd_total",
    "counter",
    "Classifier canary: what the answers of a transition cell cost, by decider (USD).",
    (POLICY, FROM_TIER, TO_TIER, DECIDER),
)

ROUTER_METRICS: Final = (
    REQUESTS,
    REQUEST_DURATION,
    TIME_TO_FIRST_TOKEN,
    TOKENS,
    COST,
    SHADOW_COST,
    UPSTREAM_ERRORS,
    ESCALATIONS,
    HEDGES,
    FEEDBACK,
    FEEDBACK_REJECTED,
    SHADOW_JUDGEMENTS,
    SHADOW_PAIRWISE,
    PREFLIGHT_SPEND,
    PREFLIGHT_SHED,
    CLASSIFIER_DURATION,
    CANARY_WEIGHT,
    CONFIG_RELOADS,
    INVALID_REQUESTS,
    SESSION_KEYS,
    SESSION_TIER_CHANGES,
    STATEFUL_TURNS,
    UNSAFE_SWITCHES,
    CLASSIFIER_CACHE,
    CLASSIFIER_INFO,
    CLASSIFIER_TRANSITIONS,
    CLASSIFIER_CELL_REQUESTS,
    CLASSIFIER_CELL_FEEDBACK,
    CLASSIFIER_CELL_COST,
    ROUTER_OVERHEAD,
    SLICE_REQUESTS,
    SLICE_FEEDBACK,
    SLICE_SHADOW_JUDGEMENTS,
)

# Operator metrics ----------------------------------------------------------------
ROLLOUT_PHASE: Final = MetricDef(
    f"{NAMESPACE}_operator_rollout_phase",
    "gauge",
    "1 for the policy's current phase, 0 for the others.",
    ("namespace", POLICY, "phase"),
)
ROLLOUT_WEIGHT: Final = MetricDef(
    f"{NAMESPACE}_operator_canary_weight_percent",
    "gauge",
    "Canary weight the operator has set.",
    ("namespace", POLICY),
)
GATE_EVALUATIONS: Final = MetricDef(
    f"{NAMESPACE}_operator_gate_evaluations_total",
    "counter",
    "Gate evaluations by verdict (Pass, Fail, Inconclusive, NoData), per (tier, signal) "
    "gate; slice gates are not counted here (their verdicts are in status).",
    ("namespace", POLICY, TIER, "signal", VERDICT),
)
GATE_UPPER_BOUND: Final = MetricDef(
    f"{NAMESPACE}_operator_gate_upper_bound",
    "gauge",
    "The gate's anytime-valid upper bound on what it gates (canary minus control bad "
    "rate as a share of requests; the canary's own rate for a ceiling; P(worse) minus "
    "P(better) for a pairwise gate) at its last evaluation, per (tier, signal) gate; "
    "absent until the gate has computed a finite bound. The gate passes once it is at or "
    "below tierguard_operator_gate_allowed.",
    ("namespace", POLICY, TIER, "signal"),
)
GATE_ALLOWED: Final = MetricDef(
    f"{NAMESPACE}_operator_gate_allowed",
    "gauge",
    "What the gate allows for the quantity its upper bound is on (the allowed increase "
    "of the bad rate, or the ceiling), per (tier, signal) gate, set with "
    "tierguard_operator_gate_upper_bound.",
    ("namespace", POLICY, TIER, "signal"),
)
ROLLBACKS: Final = MetricDef(
    f"{NAMESPACE}_operator_rollbacks_total",
    "counter",
    "Rollbacks by reason.",
    ("namespace", POLICY, REASON),
)
PROMETHEUS_ERRORS: Final = MetricDef(
    f"{NAMESPACE}_operator_prometheus_errors_total",
    "counter",
    "Failed Prometheus queries (unreachable, timeout, bad response).",
    ("namespace", POLICY),
)
EVALUATION_LAG: Final = MetricDef(
    f"{NAMESPACE}_operator_evaluation_lag_seconds",
    "gauge",
    "How late the policy's last gate evaluation started against its rollout.interval "
    "schedule (backpressure: grows when the operator falls behind).",
    ("namespace", POLICY),
)
RECONCILE_BACKLOG: Final = MetricDef(
    f"{NAMESPACE}_operator_reconcile_backlog",
    "gauge",
    "Reconciles waiting for a worker thread.",
    (),
)

OPERATOR_METRICS: Final = (
    ROLLOUT_PHASE,
    ROLLOUT_WEIGHT,
    GATE_EVALUATIONS,
    GATE_UPPER_BOUND,
    GATE_ALLOWED,
    ROLLBACKS,
    PROMETHEUS_ERRORS,
    EVALUATION_LAG,
    RECONCILE_BACKLOG,
)
ALL_METRICS: Final = ROUTER_METRICS + OPERATOR_METRICS
