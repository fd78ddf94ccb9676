"""Rendering: a RoutingPolicy (spec + status) → the Kubernetes objects that run its routers.

Pure functions returning plain dicts, applied by :mod:`tierguard.operator.kube` with
server-side apply. Every object is fully rendered on every reconcile (no read-modify-write,
nothing for Argo CD to flag as drift), labelled, and owned by the policy (deleting the
policy deletes them; names, labels and owner reference are :mod:`tierguard.operator.rendermeta`).

Objects (``<p>`` = policy name):

* ConfigMap ``<p>-router``: the :class:`~tierguard.api.routerconfig.RouterConfig` YAML under
  ``router.yaml`` (:mod:`tierguard.operator.render_routerconfig`), including the current
  split weights from status. Routers watch it
  through the API, so a rollback reaches them within seconds (a mounted ConfigMap would
  take the kubelet a minute).
* ConfigMap ``<p>-classifier-<digest[:10]>`` (a ConfigMap classifier only): the frozen
  copy of the model the rollout runs, ``immutable: true``, named by its content digest
  (``status.classifierDigest``; :func:`tierguard.operator.render_classifier.classifier_copy`).
  The routers mount this copy, never the source, so an
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

from typing import Any

from tierguard.api import constants as c
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.classifiercontent import FrozenModel
from tierguard.operator.render_classifier import classifier_copy, classifier_volumes
from tierguard.operator.render_routerconfig import (
    CLIENT_KEYS_DIR,
    SIGNING_KEY_DIR,
    api_key_env,
    router_config,
    router_config_yaml,
)
from tierguard.operator.rendermeta import (
    PolicyRef,
    labels,
    object_meta,
    object_name,
    selector_labels,
    signing_secret_name,
)

Obj = dict[str, Any]

RUN_AS_USER = 65532


# --------------------------------------------------------------------------- configuration


def config_map(ref: PolicyRef, spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": object_meta(ref),
        "data": {c.ROUTER_CONFIG_KEY: router_config_yaml(router_config(ref, spec, status))},
    }


# --------------------------------------------------------------------------- identity


def service_account(ref: PolicyRef) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": object_meta(ref),
        "automountServiceAccountToken": True,
    }


def role(ref: PolicyRef) -> Obj:
    """The router reads its own ConfigMap and nothing else."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": object_meta(ref),
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
        "metadata": object_meta(ref),
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
        "metadata": object_meta(ref, signing_secret_name(ref.name)),
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
        "metadata": object_meta(ref),
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
        "metadata": object_meta(ref),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(ref.name),
            "ports": [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def wants_disruption_budget(spec: RoutingPolicySpec) -> bool:
    """A budget only for two or more routers: with one, ``maxUnavailable: 1`` lets its
    only pod go anyway (a budget that protects nothing costs an object, its controller's
    status writes, and a drift watch per policy); with 0 there is nothing to protect.
    Scaling down to one deletes it (:meth:`Applier._prune`)."""
    return spec.router.replicas >= 2


def pod_disruption_budget(ref: PolicyRef) -> Obj:
    """At most one router down by a voluntary disruption (drain, upgrade) at a time.
    maxUnavailable rather than minAvailable, so a single-replica router can still be
    evicted (a budget no eviction satisfies would block node drains). Unhealthy pods may
    always be evicted (``unhealthyPodEvictionPolicy: AlwaysAllow``): a router that is not
    ready serves nobody, and counting it against the budget would block a drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": object_meta(ref),
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
        "metadata": object_meta(ref),
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
        copy.append(
            jpc.prompt_copy(object_meta(ref), ref.name, status.judge_prompt_digest, judge_prompt)
        )
    objs = [
        service_account(ref),
        role(ref),
        role_binding(ref),
        config_map(ref, spec, status),
        *copy,
        deployment(ref, spec, status),
        *([pod_disruption_budget(ref)] if wants_disruption_budget(spec) else []),
        service(ref, spec),
    ]
    if service_monitor_available:
        objs.append(service_monitor(ref))
    return objs
