"""Where the API server serves every kind the operator renders (a fixed table: no
discovery cache file, nothing to re-discover while other threads apply)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class UnknownKindError(KeyError):
    """A kind the operator does not render."""


@dataclass(frozen=True)
class Resource:
    """Where the API server serves one kind the operator renders."""

    group_version: str  # "v1" or "apps/v1"
    plural: str

    def path(self, namespace: str, name: str | None = None) -> str:
        base = "/api/v1" if self.group_version == "v1" else f"/apis/{self.group_version}"
        out = f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{out}/{name}" if name else out


#: Every kind :mod:`render` produces (apiVersion, kind) -> where it is served.
RESOURCES: dict[tuple[str, str], Resource] = {
    ("v1", "ConfigMap"): Resource("v1", "configmaps"),
    ("v1", "Service"): Resource("v1", "services"),
    ("v1", "ServiceAccount"): Resource("v1", "serviceaccounts"),
    ("v1", "Secret"): Resource("v1", "secrets"),
    ("apps/v1", "Deployment"): Resource("apps/v1", "deployments"),
    ("policy/v1", "PodDisruptionBudget"): Resource("policy/v1", "poddisruptionbudgets"),
    ("rbac.authorization.k8s.io/v1", "Role"): Resource("rbac.authorization.k8s.io/v1", "roles"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): Resource(
        "rbac.authorization.k8s.io/v1", "rolebindings"
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): Resource(
        "monitoring.coreos.com/v1", "servicemonitors"
    ),
}
SERVICE_MONITOR_GROUP_VERSION = "monitoring.coreos.com/v1"


def resource_for(obj: dict[str, Any]) -> Resource:
    try:
        return RESOURCES[(obj["apiVersion"], obj["kind"])]
    except KeyError:
        raise UnknownKindError(f"the operator does not render {obj.get('kind')!r}") from None
