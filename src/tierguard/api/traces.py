"""Trace span and attribute names: the router's OpenTelemetry traces follow the GenAI
semantic conventions (``gen_ai.*``, open-telemetry/semantic-conventions docs/gen-ai) and
add routing attributes under ``tierguard.*``. docs/metrics.md (section Traces) is
generated from this module by ``tierguard gen-docs``; the router builds its attributes
from these names only (:mod:`tierguard.router.spanattrs`).

Pure: imports no OpenTelemetry package (the ``otel`` extra is optional).
"""

from __future__ import annotations

from typing import Final

# GenAI semantic conventions ----------------------------------------------------
OPERATION_NAME: Final = "gen_ai.operation.name"
OPERATION_CHAT: Final = "chat"
PROVIDER_NAME: Final = "gen_ai.provider.name"
#: every upstream speaks the OpenAI chat completions API
PROVIDER_OPENAI: Final = "openai"
REQUEST_MODEL: Final = "gen_ai.request.model"
REQUEST_STREAM: Final = "gen_ai.request.stream"
RESPONSE_MODEL: Final = "gen_ai.response.model"
RESPONSE_ID: Final = "gen_ai.response.id"
RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS: Final = "gen_ai.usage.cache_read.input_tokens"
CONVERSATION_ID: Final = "gen_ai.conversation.id"
INPUT_MESSAGES: Final = "gen_ai.input.messages"
OUTPUT_MESSAGES: Final = "gen_ai.output.messages"
ERROR_TYPE: Final = "error.type"
SERVER_ADDRESS: Final = "server.address"
SERVER_PORT: Final = "server.port"
HTTP_RESPONSE_STATUS_CODE: Final = "http.response.status_code"

EVALUATION_EVENT: Final = "gen_ai.evaluation.result"
EVALUATION_NAME: Final = "gen_ai.evaluation.name"
EVALUATION_SCORE_LABEL: Final = "gen_ai.evaluation.score.label"
EVALUATION_EXPLANATION: Final = "gen_ai.evaluation.explanation"

# tierguard routing attributes ------------------------------------------------------
POLICY: Final = "tierguard.policy"
TIER: Final = "tierguard.tier"
ARM: Final = "tierguard.arm"
REVISION: Final = "tierguard.revision"
CLASSIFIER_DIGEST: Final = "tierguard.classifier.digest"
TIER_SOURCE: Final = "tierguard.tier.source"
MODEL: Final = "tierguard.model"
CALL_KIND: Final = "tierguard.call.kind"
CALL_SERVED: Final = "tierguard.call.served"
FALLBACK_REASON: Final = "tierguard.fallback.reason"
REQUEST_ID: Final = "tierguard.request.id"

#: tierguard.call.kind values: the chain's first model, a later model of the chain (after
#: an error or a latency-budget hedge), the shadow call to the baseline, the LLM judge
CALL_PRIMARY: Final = "primary"
CALL_FALLBACK: Final = "fallback"
CALL_SHADOW: Final = "shadow"
CALL_JUDGE: Final = "judge"
CALL_KINDS: Final = (CALL_PRIMARY, CALL_FALLBACK, CALL_SHADOW, CALL_JUDGE)

#: gen_ai.evaluation.name values
EVAL_FEEDBACK: Final = "tierguard.feedback"
EVAL_SHADOW: Final = "tierguard.shadow_agreement"

#: error.type of an attempt the router cancelled (a hedge's loser, the deadline)
ERROR_CANCELLED: Final = "cancelled"

#: (attribute, where, meaning, proposed gen_ai.gateway.* counterpart or "")
ATTRIBUTES: Final = (
    (OPERATION_NAME, "server, client", f"`{OPERATION_CHAT}`", ""),
    (
        PROVIDER_NAME,
        "server, client",
        f"`{PROVIDER_OPENAI}` (every upstream speaks the OpenAI chat completions API)",
        "",
    ),
    (
        REQUEST_MODEL,
        "server, client",
        "server: the model the client asked for (`auto` or a policy model name); client: "
        "the upstream model id sent",
        "`gen_ai.gateway.request.model` (the alias the client asked for, on the server span)",
    ),
    (REQUEST_STREAM, "server, client", "whether the answer is streamed", ""),
    (
        RESPONSE_MODEL,
        "server, client",
        "the upstream model that answered (as the upstream names it)",
        "`gen_ai.gateway.response.models` (all attempted models: the client spans)",
    ),
    (
        RESPONSE_ID,
        "server, client, events",
        "server and evaluation events: the signed decision id the client got as `id`; "
        "client: the upstream's own id",
        "",
    ),
    (RESPONSE_FINISH_REASONS, "client", "finish reasons of a JSON answer", ""),
    (USAGE_INPUT_TOKENS, "server, client", "prompt tokens billed", ""),
    (USAGE_OUTPUT_TOKENS, "server, client", "completion tokens billed", ""),
    (
        USAGE_CACHE_READ_INPUT_TOKENS,
        "server, client",
        "the prompt's cached part (`prompt_tokens_details.cached_tokens`), when reported",
        "`gen_ai.gateway.usage.tokens.cached`",
    ),
    (
        CONVERSATION_ID,
        "server, client",
        "a hash of the session (stickiness) key with the policy's salt, never the key",
        "`gen_ai.gateway.session.id` (routing affinity)",
    ),
    (
        ERROR_TYPE,
        "server, client",
        "server: the OpenAI error code the client got; client: the attempt's failure "
        f"reason (the `reason` label values of the upstream errors metric, or `{ERROR_CANCELLED}`)",
        "",
    ),
    (SERVER_ADDRESS, "client", "the upstream's host", ""),
    (SERVER_PORT, "client", "the upstream's port", ""),
    (HTTP_RESPONSE_STATUS_CODE, "server", "the status the client got", ""),
    (
        INPUT_MESSAGES,
        "server",
        "the request's messages, only with `captureContent: true`",
        "",
    ),
    (
        OUTPUT_MESSAGES,
        "server",
        "the answer's text, only with `captureContent: true` (when the router read it)",
        "",
    ),
    (POLICY, "server, client", "the RoutingPolicy", "`gen_ai.gateway.name` is `tierguard`"),
    (TIER, "server, client", "the request's tier", "none proposed"),
    (ARM, "server, client", "the request's arm", "none proposed"),
    (REVISION, "server, client", "the policy revision the router serves", "none proposed"),
    (
        CLASSIFIER_DIGEST,
        "server",
        "`sha256:` digest of the classifier model file, when known",
        "none proposed",
    ),
    (TIER_SOURCE, "server", "how the tier was decided (classifier, cache, pinned ...)", ""),
    (MODEL, "client", "the policy's model name of the attempt", ""),
    (
        CALL_KIND,
        "client",
        ", ".join(f"`{k}`" for k in CALL_KINDS)
        + ": the chain's first model, a later model of the chain, the shadow call, the "
        "LLM judge",
        "`gen_ai.gateway.providers.attempted` (the fallback chain)",
    ),
    (CALL_SERVED, "client", "true on the attempt whose answer the client got", ""),
    (
        FALLBACK_REASON,
        "client",
        "on a fallback: `error` (the previous model failed) or `budget` (a hedge after the "
        "latency budget)",
        "none proposed",
    ),
    (REQUEST_ID, "server", "the request id (`x-request-id`)", "`gen_ai.gateway.request.id`"),
)
