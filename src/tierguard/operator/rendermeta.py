"""Metadata of everything the operator renders: names, its own labels, owner reference,
and the extra labels and annotations a platform asks for.

Own metadata (``<p>`` = policy name): every rendered object is named ``<p>-router`` (one
per kind; :func:`object_name`), labelled with :func:`labels` (:func:`selector_labels`
select the router's pods) and owned by the policy (:func:`owner_reference`: deleting the
policy deletes them). :func:`object_meta` is that metadata block.

Extras: platforms select objects by label: kube-prometheus-stack's Prometheus picks up only
ServiceMonitors carrying its ``release`` label, cost tools group by ``team``, policy
engines demand an ``owner``. The operator's own labels are fixed (they select pods and
tie objects to their policy), so these extras are added next to them — on every object
the operator renders (ServiceAccount, Role, RoleBinding, ConfigMap, Deployment, Service,
ServiceMonitor, the generated signing-key Secret) — and may not override them.

Set with ``tierguard operator --rendered-label KEY=VALUE --rendered-annotation KEY=VALUE``
(the chart's ``operator.renderedLabels`` / ``operator.renderedAnnotations``).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tierguard.api import constants as c

Obj = dict[str, Any]


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


def object_meta(ref: PolicyRef, name: str | None = None) -> Obj:
    return {
        "name": name or object_name(ref.name),
        "namespace": ref.namespace,
        "labels": labels(ref.name),
        "ownerReferences": [owner_reference(ref)],
    }


# --------------------------------------------------------------------------- extras


_NAME = r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)"
_PREFIX = r"([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*)"
_KEY = re.compile(rf"^({_PREFIX}/)?{_NAME}$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")


class InvalidMetadataError(ValueError):
    """A label or annotation that Kubernetes would refuse, or one that is the operator's."""


@dataclass(frozen=True)
class RenderedMetadata:
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


def _check_key(key: str, what: str) -> None:
    prefix = key.rsplit("/", 1)[0] if "/" in key else ""
    if not _KEY.match(key) or len(prefix) > 253:
        raise InvalidMetadataError(
            f"{what} key {key!r} is not a valid Kubernetes key ([prefix/]name, name at most "
            "63 characters of alphanumerics, '-', '_', '.')"
        )


def parse_pairs(items: Iterable[str], what: str) -> dict[str, str]:
    """``["k=v", ...]`` → ``{"k": "v"}``, refusing what the API server or the operator
    would not accept, with a message naming the offending item."""
    out: dict[str, str] = {}
    reserved = set(labels("x"))
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise InvalidMetadataError(f"{what} {item!r}: expected KEY=VALUE")
        _check_key(key, what)
        if what == "label":
            if not _LABEL_VALUE.match(value):
                raise InvalidMetadataError(
                    f"label {key}={value!r}: a label value is at most 63 alphanumerics, "
                    "'-', '_', '.', beginning and ending with an alphanumeric"
                )
            if key in reserved:
                raise InvalidMetadataError(
                    f"label {key!r} is set by the operator itself (it selects the router's "
                    "pods and ties objects to their policy); choose another key"
                )
        out[key] = value
    return out


def with_metadata(obj: dict[str, Any], extra: RenderedMetadata) -> dict[str, Any]:
    """A copy of ``obj`` with the extra labels and annotations in its metadata (the
    operator's own labels win)."""
    if not extra.labels and not extra.annotations:
        return obj
    out = copy.deepcopy(obj)
    meta = out.setdefault("metadata", {})
    if extra.labels:
        meta["labels"] = {**extra.labels, **meta.get("labels", {})}
    if extra.annotations:
        meta["annotations"] = {**extra.annotations, **meta.get("annotations", {})}
    return out
