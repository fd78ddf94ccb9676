"""The classifier as content: what the operator read, and whether the routers run it.

Pure; the reads are the controller's (the ConfigMap) and
:mod:`tierguard.operator.observe_routers`' (Prometheus).

* :func:`lookup` turns the referenced ConfigMap (or the error reading it) into a
  :class:`ClassifierLookup`: its content digest
  (:func:`tierguard.api.classifierdigest.classifier_digest`) and the model entry to freeze,
  or ``error`` when it could not be read. An error is *unknown*, never *changed*: the
  rollout holds where it is and the routers keep the frozen copy they mount.
* :func:`routers_hold` says why a look at Prometheus must not count for the stage: some
  router replica does not report the target classifier digest (or runs a config of
  another revision). ``None``: every replica is on target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierguard.api.classifierdigest import (
    ModelKeyError,
    classifier_digest,
    configmap_model,
    model_sha256,
)
from tierguard.api.policy import RoutingPolicySpec


@dataclass(frozen=True)
class FrozenModel:
    """The referenced model entry, to be copied verbatim into the immutable ConfigMap."""

    key: str
    field: str  # "binaryData" or "data"
    value: str  # as the API returns it (base64 for binaryData)


@dataclass(frozen=True)
class ClassifierLookup:
    """What the operator knows about the classifier's content this reconcile.

    ``digest`` "" with no ``error``: the bundled model (its bytes are in the router image,
    which the operator cannot read; see :func:`routers_hold`). ``error`` set: unknown."""

    digest: str = ""
    source: str = ""  # "ConfigMap <name> key <key>", for messages
    model: FrozenModel | None = None
    error: str | None = None

    @property
    def unknown(self) -> bool:
        return self.error is not None


BUNDLED = ClassifierLookup()


def lookup(
    spec: RoutingPolicySpec, configmap: Mapping[str, Any] | None, error: str | None = None
) -> ClassifierLookup:
    """The lookup for ``spec`` from the referenced ConfigMap as read (``error``: the
    read failed). A spec without a ConfigMap reference is the bundled model."""
    ref = spec.classifier.source.config_map_ref
    if ref is None:
        return BUNDLED
    source = f"ConfigMap {ref.name} key {ref.key}"
    if error is not None or configmap is None:
        return ClassifierLookup(source=source, error=error or "not read")
    try:
        fld, raw, data = configmap_model(configmap, ref.key)
    except ModelKeyError as exc:
        return ClassifierLookup(source=source, error=f"ConfigMap {ref.name}: {exc}")
    digest = classifier_digest(model_sha256(data), spec.classifier)
    return ClassifierLookup(
        digest=digest, source=source, model=FrozenModel(ref.key, fld, raw), error=None
    )


# --------------------------------------------------------------------------- routers


@dataclass(frozen=True)
class RouterReport:
    """One router process's ``tierguard_classifier_info`` series."""

    instance: str
    digest: str
    revision: str


@dataclass(frozen=True)
class RouterReports:
    """Every router's report at one look; ``error``: the query failed."""

    reports: Sequence[RouterReport] = field(default_factory=tuple)
    error: str | None = None


def routers_hold(
    reports: RouterReports, target_digest: str, revision: str, requests_flowing: bool
) -> str | None:
    """Why this look must not count for the stage, or None when every router replica
    reports the target.

    ``target_digest`` "" (the bundled model: the operator cannot hash the image's bytes):
    every replica must report the *same* digest. Every replica must also run the config
    of ``revision`` (so its thresholds and input mode are the policy's current ones).
    No report at all holds only while requests flow (routers that count requests but do
    not say what they run); without traffic the gates hold on their own.
    """
    if reports.error is not None:
        return f"cannot read which classifier the routers run: {reports.error}"
    rs = sorted(reports.reports, key=lambda r: r.instance)
    if not rs:
        if requests_flowing:
            return "no router reports tierguard_classifier_info: cannot tell what classifier runs"
        return None
    stale = [r for r in rs if r.revision != revision]
    if target_digest:
        off = [r for r in rs if r.digest != target_digest]
        want = f"classifier {target_digest}"
    else:
        digests = sorted({r.digest for r in rs})
        off = [r for r in rs if r.digest != digests[0]] if len(digests) > 1 else []
        want = "one classifier"
    if not off and not stale:
        return None
    parts = []
    if off:
        shown = ", ".join(f"{r.instance} on {r.digest}" for r in off[:3])
        more = f" and {len(off) - 3} more" if len(off) > 3 else ""
        parts.append(f"{len(off)}/{len(rs)} router(s) not on {want} ({shown}{more})")
    if stale:
        shown = ", ".join(f"{r.instance} on {r.revision or '-'}" for r in stale[:3])
        parts.append(f"{len(stale)}/{len(rs)} router(s) not on revision {revision} ({shown})")
    return "; ".join(parts)
