"""The operator's least-privilege RBAC rules, as data, in one place.

The Helm chart renders its ClusterRole from :data:`OPERATOR_RULES` (``tierguard gen-rbac``
style, or by importing this module), and the integration tests run the operator with a
ServiceAccount bound to exactly these rules, so a missing verb fails a test instead of a
production rollout.

Why each rule:

* routingpolicies: watch them; ``patch`` only for kopf to remove the finalizer that
  operators before 2026-12-01 put on policies (the spec is never written; this one adds
  no finalizer); ``routingpolicies/status`` is where all rollout state lives.
* ``routingpolicies/finalizers``: ``update``, so owner references with
  ``blockOwnerDeletion`` are allowed where OwnerReferencesPermissionEnforcement is on.
* configmaps, services, serviceaccounts, deployments, roles, rolebindings,
  servicemonitors: server-side apply (``patch``; ``create`` for the first apply) of the
  rendered objects; ``get/list/watch`` to read them back.
* configmaps: ``delete`` the policy's frozen classifier and judge prompt copies no
  revision refers to any more (:mod:`tierguard.operator.prunecopies`; the only delete
  the operator makes).
* secrets: ``create`` the generated signing key (never read back), ``get`` the
  Prometheus bearer token a policy may name.
* events: one per transition.
* customresourcedefinitions: discover whether ServiceMonitor exists.
* kopf peering (kopf.dev): two replicas, one active.
* namespaces: kopf's namespace discovery when watching a pattern of namespaces.
"""

from __future__ import annotations

from typing import Any, Final

from tierguard.api import constants as c

Rule = dict[str, list[str]]

READ: Final = ["get", "list", "watch"]
APPLY: Final = ["get", "list", "watch", "create", "patch", "update"]

OPERATOR_RULES: Final[list[Rule]] = [
    {"apiGroups": [c.GROUP], "resources": [c.PLURAL], "verbs": [*READ, "patch"]},
    {
        "apiGroups": [c.GROUP],
        "resources": [f"{c.PLURAL}/status"],
        "verbs": ["get", "patch", "update"],
    },
    {"apiGroups": [c.GROUP], "resources": [f"{c.PLURAL}/finalizers"], "verbs": ["update"]},
    {"apiGroups": [""], "resources": ["configmaps", "services", "serviceaccounts"], "verbs": APPLY},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": APPLY},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": APPLY},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"], "verbs": ["delete"]},
    {
        "apiGroups": ["rbac.authorization.k8s.io"],
        "resources": ["roles", "rolebindings"],
        "verbs": APPLY,
    },
    {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"], "verbs": APPLY},
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create"]},
    {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["get", "list", "watch"],
    },
    {
        "apiGroups": ["kopf.dev"],
        "resources": ["clusterkopfpeerings", "kopfpeerings"],
        "verbs": ["get", "list", "watch", "patch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


def cluster_role(name: str = "tierguard-operator") -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {c.LABEL_MANAGED_BY: "tierguard"}},
        "rules": [{k: list(v) for k, v in r.items()} for r in OPERATOR_RULES],
    }


def cluster_role_binding(
    service_account: str, namespace: str, name: str = "tierguard-operator"
) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {c.LABEL_MANAGED_BY: "tierguard"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": service_account, "namespace": namespace}],
    }
