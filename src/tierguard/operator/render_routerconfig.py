"""Rendering the router's configuration: a RoutingPolicy's spec resolved, plus the split
its status decided, as the :class:`~tierguard.api.routerconfig.RouterConfig` the routers
run (``router.yaml`` of the ``<p>-router`` ConfigMap, :func:`tierguard.operator.render.config_map`).

Pure. Also the contract with the router's pod (:func:`tierguard.operator.render.deployment`):
where the config says the router finds its keys — model API keys in the environment
variables of :func:`api_key_env`, the signing key and client keys as files under
:data:`SIGNING_KEY_DIR` and :data:`CLIENT_KEYS_DIR` — and which Secret keys the pod needs
(:func:`secret_refs`). The classifier section is :mod:`tierguard.operator.render_classifier`.
"""

from __future__ import annotations

import re

import yaml

from tierguard.api.policy import RoutingPolicySpec, SecretKeyRef
from tierguard.api.routerconfig import (
    FeedbackConfig,
    MirrorBudgetConfig,
    ObservabilityConfig,
    Route,
    RouterConfig,
    SecretSource,
    ServerConfig,
    ShadowConfig,
    Stickiness,
    TierSplit,
    UpstreamModel,
)
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import preflight
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.render_classifier import canary_weight as classifier_canary_weight
from tierguard.operator.render_classifier import classifier_configs
from tierguard.operator.rendermeta import PolicyRef
from tierguard.operator.revision import split_salt
from tierguard.operator.rollout import serving_split

SIGNING_KEY_DIR = "/var/run/secrets/tierguard/signing"
CLIENT_KEYS_DIR = "/var/run/secrets/tierguard/clients"
#: Key of the signing key in the Secret the operator creates when the spec names none.
GENERATED_SIGNING_KEY = "signing-key"


def api_key_env(model: str) -> str:
    """Environment variable holding a model's upstream API key."""
    return "TIERGUARD_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", model.upper())


def _mirror_budget(status: RoutingPolicyStatus) -> MirrorBudgetConfig | None:
    budget = preflight.budget_of(status.gate_state)
    if budget is None:
        return None
    return MirrorBudgetConfig(epoch=budget.epoch, usd_per_router=budget.usd_per_router)


def router_config(
    ref: PolicyRef, spec: RoutingPolicySpec, status: RoutingPolicyStatus
) -> RouterConfig:
    """The router's configuration: the spec resolved, plus the split status decided."""
    weight, control_arm = serving_split(spec, status)
    mirrors = preflight.mirror_rates(spec, status, gate_specs(spec))
    deciding, candidate = classifier_configs(spec, status)
    latency = sorted({s.latency_objective for s in spec.analysis.slos if s.latency_objective})
    return RouterConfig(
        policy=ref.name,
        namespace=ref.namespace,
        revision=status.revision,
        salt=split_salt(ref.uid, status.revision, status.attempt),
        classifier=deciding,
        shadow_classifier=candidate,
        classifier_canary_weight=classifier_canary_weight(status),
        models=[
            UpstreamModel.model_validate(
                {
                    "name": m.name,
                    "baseURL": m.base_url,
                    "upstreamModel": m.upstream_model,
                    "apiKey": (
                        SecretSource(env=api_key_env(m.name)) if m.api_key_secret_ref else None
                    ),
                    "pricing": m.pricing,
                    "timeout": m.timeout,
                    "contextWindow": m.context_window,
                    "systemPrompt": m.system_prompt,
                    "streamUsage": m.stream_usage,
                }
            )
            for m in spec.models
        ],
        slices=spec.analysis.slices,
        mirror_budget=_mirror_budget(status) if mirrors else None,
        routes=[
            Route(
                tier=r.tier,
                baseline=r.baseline,
                candidate=r.candidate,
                fallbacks=r.fallbacks,
                latency_budget=r.latency_budget,
            )
            for r in spec.routes
        ],
        split=[
            TierSplit(
                tier=r.tier,
                weight=weight,
                control_arm=control_arm,
                mirror_rate=mirrors.get(r.tier, 0.0),
            )
            for r in spec.routes
            if r.candidate is not None
        ],
        stickiness=Stickiness(
            key=spec.rollout.stickiness.key,
            header=spec.rollout.stickiness.header,
            session_header=spec.rollout.stickiness.session_header,
        ),
        server=ServerConfig(
            port=spec.router.port,
            max_body_bytes=spec.router.max_body_bytes,
            max_response_bytes=spec.router.max_response_bytes,
            request_deadline=spec.router.request_deadline,
            client_api_keys=(
                SecretSource(file=f"{CLIENT_KEYS_DIR}/{spec.router.client_api_keys_secret_ref.key}")
                if spec.router.client_api_keys_secret_ref
                else None
            ),
            log_level=spec.router.log_level,
        ),
        feedback=FeedbackConfig(
            signing_key=SecretSource(file=f"{SIGNING_KEY_DIR}/{_signing_key(spec)}"),
            ttl=spec.router.feedback_ttl,
        ),
        shadow=ShadowConfig(
            sample_rate=spec.router.shadow.sample_rate,
            judge=spec.router.shadow.judge,
            judge_prompt_path=jpc.router_path(spec),
            judge_prompt_digest=status.judge_prompt_digest if jpc.reference(spec) else "",
        ),
        observability=ObservabilityConfig(
            latency_objectives=latency,
            log_prompts=spec.router.log_prompts,
            overhead_header=spec.router.overhead_header,
            tracing=spec.router.tracing,
            review_sample_size=spec.router.review_sample_size,
        ),
    )


def _signing_key(spec: RoutingPolicySpec) -> str:
    ref = spec.router.signing_key_secret_ref
    return ref.key if ref else GENERATED_SIGNING_KEY


def secret_refs(spec: RoutingPolicySpec) -> list[tuple[str, SecretKeyRef]]:
    """Every Secret key the rendered routers need, with the spec field that names it, so a
    missing one is reported against that field instead of as a pod that never starts."""
    refs = [
        (f"spec.models[{i}].apiKeySecretRef", m.api_key_secret_ref)
        for i, m in enumerate(spec.models)
        if m.api_key_secret_ref is not None
    ]
    for field, ref in (
        ("spec.router.signingKeySecretRef", spec.router.signing_key_secret_ref),
        ("spec.router.clientApiKeysSecretRef", spec.router.client_api_keys_secret_ref),
    ):
        if ref is not None:
            refs.append((field, ref))
    return refs


def router_config_yaml(config: RouterConfig) -> str:
    return yaml.safe_dump(config.to_k8s(), sort_keys=False, allow_unicode=True)
