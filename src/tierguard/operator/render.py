"""Rendering: a RoutingPolicy (spec + status) → the Kubernetes objects that run its routers.

Pure functions returning plain dicts, applied by :mod:`tierguard.operator.kube` with
server-side apply. Every object is fully rendered on every reconcile (no read-modify-write,
nothing for Argo CD to flag as drift), labelled, and owned by the policy (deleting the
policy deletes them).

Objects (``<p>`` = policy name):

* ConfigMap ``<p>-router``: the :class:`~tierguard.api.routerconfig.RouterConfig` YAML under
  ``router.yaml``, including the current split weights from status. Routers watch it
  through the API, so a rollback reaches them within seconds (a mounted ConfigMap would
  take the kubelet a minute).
* ConfigMap ``<p>-classifier-<digest[:10]>`` (a ConfigMap classifier only): the frozen
  copy of the model the rollout runs, ``immutable: true``, named by its content digest
  (``status.classifierDigest``). The routers mount this copy, never the source, so an
  edit of the source cannot change what they run: the operator reads the edit, which is a
  new revision (from the first step), and renders a new copy for it.
* ConfigMap ``<p>-judge-prompt-<digest[:10]>`` (a judge prompt template in a ConfigMap
  only): the same, for ``judge.promptConfigMapRef``
  (:mod:`~tierguard.operator.judgepromptcontent`, ``status.judgePromptDigest``).
* ServiceAccount, Role, RoleBinding ``<p>-router``: the router may get/list/watch exactly
  its own ConfigMap, nothing else.
* Deployment ``<p>-router``: non-root, read-only root filesystem, no privilege escalation,
  all capabilities dropped, probes on ``/healthz`` and ``/readyz``; model API keys as env
  from ``secretKeyRef``; signing key and client keys as mounted files. The pod template
  carries no config hash on purpose: a weight change must not restart the routers.
* PodDisruptionBudget ``<p>-router``: at most one router evicted at a time.
* Service ``<p>-router`` and, when the Prometheus Operator's CRD exists, a ServiceMonitor.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from tierguard.api import constants as c
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
from tierguard.operator.classifiercontent import FrozenModel
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.render_classifier import (
    CLASSIFIER_DIR as CLASSIFIER_DIR,
)
from tierguard.operator.render_classifier import (
    canary_weight as classifier_canary_weight,
)
from tierguard.operator.render_classifier import (
    classifier_configs,
    classifier_volumes,
)
from tierguard.operator.render_classifier import (
    classifier_copy_name as classifier_copy_name,
)
from tierguard.operator.revision import split_salt
from tierguard.operator.rollout import serving_split

Obj = dict[str, Any]

CONFIG_DIR = "/etc/tierguard"
SIGNING_KEY_DIR = "/var/run/secrets/tierguard/signing"
CLIENT_KEYS_DIR = "/var/run/secrets/tierguard/clients"
RUN_AS_USER = 65532
#: Key of the signing key in the Secret the operator creates when the spec names none.
GENERATED_SIGNING_KEY = "signing-key"


class PolicyRef:
    """What rendering needs to know about the policy object itself."""

    def __init__(self, name: str, namespace: str, uid: str) -> None:
        self.name = name
        self.namespace = namespace
        self.uid = uid


def object_name(policy: str) -> str:
    """Name of every rendered object (one per kind)."""
    return f"{policy}-router"


def signing_secret_name(policy: str) -> str:
    return f"{policy}-router-signing"


def labels(policy: str) -> dict[str, str]:
    return {
        c.LABEL_NAME: "tierguard-router",
        c.LABEL_INSTANCE: policy,
        c.LABEL_COMPONENT: "router",
        c.LABEL_MANAGED_BY: c.MANAGED_BY,
        c.LABEL_POLICY: policy,
    }


def selector_labels(policy: str) -> dict[str, str]:
    return {c.LABEL_NAME: "tierguard-router", c.LABEL_INSTANCE: policy}


def owner_reference(ref: PolicyRef) -> Obj:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": ref.name,
        "uid": ref.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _meta(ref: PolicyRef, name: str | None = None) -> Obj:
    return {
        "name": name or object_name(ref.name),
        "namespace": ref.namespace,
        "labels": labels(ref.name),
        "ownerReferences": [owner_reference(ref)],
    }


def api_key_env(model: str) -> str:
    """Environment variable holding a model's upstream API key."""
    return "TIERGUARD_API_KEY_" + re.sub(r"[^A-Z0-9]", "_", model.upper())


# --------------------------------------------------------------------------- router config


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


def config_map(ref: PolicyRef, spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(ref),
        "data": {c.ROUTER_CONFIG_KEY: router_config_yaml(router_config(ref, spec, status))},
    }


def classifier_copy(ref: PolicyRef, digest: str, model: FrozenModel) -> Obj:
    """The immutable copy of the model entry (the same key, byte for byte)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            **_meta(ref, classifier_copy_name(ref.name, digest)),
            "annotations": {c.ANNOTATION_CLASSIFIER_DIGEST: digest},
        },
        "immutable": True,
        model.field: {model.key: model.value},
    }


# --------------------------------------------------------------------------- identity


def service_account(ref: PolicyRef) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(ref),
        "automountServiceAccountToken": True,
    }


def role(ref: PolicyRef) -> Obj:
    """The router reads its own ConfigMap and nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ref),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [object_name(ref.name)],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def role_binding(ref: PolicyRef) -> Obj:
    name = object_name(ref.name)
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(ref),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": ref.namespace}],
    }


def signing_secret(ref: PolicyRef) -> Obj:
    """The generated signing-key Secret *without* its value: :mod:`kube` fills in a random
    key only when it creates the Secret, and never overwrites it (rendering stays pure and
    the key stays stable across reconciles)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": _meta(ref, signing_secret_name(ref.name)),
    }


# --------------------------------------------------------------------------- workload


def deployment(
    ref: PolicyRef, spec: RoutingPolicySpec, status: RoutingPolicyStatus | None = None
) -> Obj:
    r = spec.router
    name = object_name(ref.name)
    env: list[Obj] = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "TIERGUARD_LOG_LEVEL", "value": r.log_level},
        # in the pod's emptyDir: a restarted container continues its pre-flight budget
        # share (router/mirrorbudget.py); a new pod starts without one
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": c.ENV_ROUTER_BUDGET_LEDGER, "value": c.ROUTER_BUDGET_LEDGER},
    ]
    for m in spec.models:
        if m.api_key_secret_ref is not None:
            env.append(
                {
                    "name": api_key_env(m.name),
                    "valueFrom": {
                        "secretKeyRef": {
                            "name": m.api_key_secret_ref.name,
                            "key": m.api_key_secret_ref.key,
                        }
                    },
                }
            )
    signing = r.signing_key_secret_ref
    volumes: list[Obj] = [
        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
        {
            "name": "signing-key",
            "secret": {
                "secretName": signing.name if signing else signing_secret_name(ref.name),
                "defaultMode": 0o440,
            },
        },
    ]
    mounts: list[Obj] = [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "signing-key", "mountPath": SIGNING_KEY_DIR, "readOnly": True},
    ]
    if r.client_api_keys_secret_ref is not None:
        volumes.append(
            {
                "name": "client-keys",
                "secret": {"secretName": r.client_api_keys_secret_ref.name, "defaultMode": 0o440},
            }
        )
        mounts.append({"name": "client-keys", "mountPath": CLIENT_KEYS_DIR, "readOnly": True})
    clf_volumes, clf_mounts = classifier_volumes(ref.name, spec, status or RoutingPolicyStatus())
    volumes += clf_volumes
    mounts += clf_mounts
    prompt_cm = jpc.volume_source(ref.name, spec, status or RoutingPolicyStatus())
    if prompt_cm is not None:
        volumes.append({"name": "judge-prompt", "configMap": {"name": prompt_cm}})
        mounts.append({"name": "judge-prompt", "mountPath": jpc.JUDGE_PROMPT_DIR, "readOnly": True})

    def probe(path: str, period: int, failures: int) -> Obj:
        return {
            "httpGet": {"path": path, "port": "http"},
            "periodSeconds": period,
            "timeoutSeconds": 2,
            "failureThreshold": failures,
        }

    container: Obj = {
        "name": "router",
        "image": r.image,
        "imagePullPolicy": "IfNotPresent",
        "args": ["router", "--configmap", name, "--namespace", "$(POD_NAMESPACE)"]
        + (["--workers", str(r.workers)] if r.workers > 1 else []),
        "ports": [{"name": "http", "containerPort": r.port, "protocol": "TCP"}],
        "env": env,
        "resources": r.resources.to_k8s(),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/healthz", 10, 6),
        "startupProbe": probe("/healthz", 2, 30),
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_USER,
            "readOnlyRootFilesystem": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "volumeMounts": mounts,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(ref),
        "spec": {
            "replicas": r.replicas,
            "selector": {"matchLabels": selector_labels(ref.name)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": {
                "metadata": {"labels": labels(ref.name)},
                "spec": {
                    "serviceAccountName": name,
                    "automountServiceAccountToken": True,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "fsGroup": RUN_AS_USER,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "terminationGracePeriodSeconds": 75,
                    # Spread replicas over nodes where possible (a node failure or drain
                    # then takes one router, not all); preferred, so small clusters work.
                    "affinity": {
                        "podAntiAffinity": {
                            "preferredDuringSchedulingIgnoredDuringExecution": [
                                {
                                    "weight": 100,
                                    "podAffinityTerm": {
                                        "topologyKey": "kubernetes.io/hostname",
                                        "labelSelector": {"matchLabels": selector_labels(ref.name)},
                                    },
                                }
                            ]
                        }
                    },
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def service(ref: PolicyRef, spec: RoutingPolicySpec) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(ref),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ref.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def pod_disruption_budget(ref: PolicyRef) -> Obj:
    """At most one router down by a voluntary disruption (drain, upgrade) at a time.
    maxUnavailable rather than minAvailable, so a single-replica router can still be
    evicted (a budget no eviction satisfies would block node drains). Unhealthy pods may
    always be evicted (``unhealthyPodEvictionPolicy: AlwaysAllow``): a router that is not
    ready serves nobody, and counting it against the budget would block a drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(ref),
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": selector_labels(ref.name)},
        },
    }


def service_monitor(ref: PolicyRef) -> Obj:
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "ServiceMonitor",
        "metadata": _meta(ref),
        "spec": {
            "selector": {"matchLabels": selector_labels(ref.name)},
            "endpoints": [{"port": "http", "path": "/metrics", "interval": "15s"}],
        },
    }


def render_all(
    ref: PolicyRef,
    spec: RoutingPolicySpec,
    status: RoutingPolicyStatus,
    *,
    service_monitor_available: bool = False,
    classifier: FrozenModel | None = None,
    judge_prompt: jpc.JudgePromptLookup | None = None,
) -> list[Obj]:
    """Every object in apply order (identity first, the ConfigMaps before the Deployment).

    ``classifier``: the model entry of ``status.classifierDigest`` as read this reconcile;
    its frozen copy is rendered (None: not read now; the copy made earlier stays).
    ``judge_prompt``: likewise, the template of ``status.judgePromptDigest``."""
    copy = []
    if classifier is not None and status.classifier_digest:
        copy = [classifier_copy(ref, status.classifier_digest, classifier)]
    if (
        judge_prompt is not None
        and status.judge_prompt_digest
        and judge_prompt.digest == status.judge_prompt_digest
    ):
        copy.append(jpc.prompt_copy(_meta(ref), ref.name, status.judge_prompt_digest, judge_prompt))
    objs = [
        service_account(ref),
        role(ref),
        role_binding(ref),
        config_map(ref, spec, status),
        *copy,
        deployment(ref, spec, status),
        pod_disruption_budget(ref),
        service(ref, spec),
    ]
    if service_monitor_available:
        objs.append(service_monitor(ref))
    return objs
