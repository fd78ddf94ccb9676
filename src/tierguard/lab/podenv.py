"""A container's environment from its spec and the API's Secrets and ConfigMaps, as the
kubelet would build it (``env``, ``envFrom``, ``valueFrom``, ``$(VAR)`` expansion); part
of the lab's pod translation (:mod:`tierguard.lab.pods`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tierguard.lab.processes import LabError

_VAR_REF = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


class PodTranslationError(LabError):
    """The Deployment cannot be run locally as written (the message says which field)."""


def expand(value: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined variables are replaced, others kept,
    ``$$`` escapes a dollar."""

    def sub(m: re.Match[str]) -> str:
        return env.get(m.group(1), m.group(0))

    parts = value.split("$$")
    return "$".join(_VAR_REF.sub(sub, p) for p in parts)


def _decode_secret(secret: Mapping[str, Any]) -> dict[str, str]:
    import base64

    out = {k: base64.b64decode(v).decode("utf-8") for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def resolve_env(
    container: Mapping[str, Any],
    *,
    pod_name: str,
    namespace: str,
    secrets: Mapping[str, Mapping[str, Any]],
    configmaps: Mapping[str, Mapping[str, Any]],
    service_account: str,
) -> dict[str, str]:
    """The container's environment, as the kubelet would build it (pure).

    ``secrets`` and ``configmaps`` are API objects by name (Secrets with base64 ``data``).
    A missing optional reference is skipped; a missing required one raises.
    """
    env: dict[str, str] = {}
    for src in container.get("envFrom") or []:
        prefix = str(src.get("prefix") or "")
        if "secretRef" in src:
            ref = src["secretRef"]
            obj = secrets.get(ref["name"])
            if obj is None:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(f"envFrom: Secret {ref['name']!r} not found")
            env.update({prefix + k: v for k, v in _decode_secret(obj).items()})
        elif "configMapRef" in src:
            ref = src["configMapRef"]
            cm = configmaps.get(ref["name"])
            if cm is None:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(f"envFrom: ConfigMap {ref['name']!r} not found")
            env.update({prefix + k: str(v) for k, v in (cm.get("data") or {}).items()})
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = expand(str(item["value"]), env)
            continue
        vf = item.get("valueFrom") or {}
        if "secretKeyRef" in vf:
            ref = vf["secretKeyRef"]
            obj = secrets.get(ref["name"])
            data = _decode_secret(obj) if obj is not None else {}
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(
                    f"env {name}: secretKeyRef {ref['name']}/{ref['key']} not found in "
                    f"namespace {namespace}"
                )
            env[name] = data[ref["key"]]
        elif "configMapKeyRef" in vf:
            ref = vf["configMapKeyRef"]
            cm = configmaps.get(ref["name"]) or {}
            cm_data = cm.get("data") or {}
            if ref["key"] not in cm_data:
                if ref.get("optional"):
                    continue
                raise PodTranslationError(
                    f"env {name}: configMapKeyRef {ref['name']}/{ref['key']} not found"
                )
            env[name] = str(cm_data[ref["key"]])
        elif "fieldRef" in vf:
            path = vf["fieldRef"].get("fieldPath", "")
            fields = {
                "metadata.name": pod_name,
                "metadata.namespace": namespace,
                "spec.serviceAccountName": service_account,
                "status.podIP": "127.0.0.1",
                "status.hostIP": "127.0.0.1",
                "spec.nodeName": "lab",
            }
            if path not in fields:
                raise PodTranslationError(f"env {name}: fieldRef {path!r} is not supported here")
            env[name] = fields[path]
        elif "resourceFieldRef" in vf:
            continue  # limits are not enforced on local processes
        else:
            raise PodTranslationError(f"env {name}: unsupported valueFrom {sorted(vf)}")
    return env
