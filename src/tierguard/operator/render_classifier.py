"""Rendering the classifier(s) the routers run: the section of the router config, the
frozen copies (:func:`classifier_copy`) and their volumes. Pure; part of
:mod:`tierguard.operator.render`.

* The deciding classifier is ``status.stableClassifier`` (the one that decided so far):
  its settings, and the frozen copy ``<p>-classifier-<digest[:10]>`` of its digest mounted
  at :data:`CLASSIFIER_DIR`. Before the operator ever read the classifier (no stable
  snapshot yet) it is the spec's, mounted from ``status.classifierDigest`` or the source.
* During a decision shadow (:mod:`tierguard.operator.rollout_shadow`) the candidate, the
  spec's classifier of ``status.classifierDigest``, is ``shadowClassifier`` and its copy is
  mounted at :data:`CANDIDATE_DIR`. Outside the shadow nothing else is mounted or loaded.
"""

from __future__ import annotations

from typing import Any

from tierguard.api.classifierchange import ClassifierSnapshot
from tierguard.api.constants import ANNOTATION_CLASSIFIER_DIGEST
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.routerconfig import ClassifierConfig
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import rollout_clfcanary, rollout_shadow
from tierguard.operator.classifiercontent import FrozenModel
from tierguard.operator.rendermeta import PolicyRef, object_meta

CLASSIFIER_DIR = "/etc/tierguard/classifier"
CANDIDATE_DIR = "/etc/tierguard/classifier-candidate"

_CONFIG_FIELDS = {f.alias or n for n, f in ClassifierConfig.model_fields.items()}


def classifier_copy_name(policy: str, digest: str) -> str:
    """The frozen classifier copy of ``digest``."""
    return f"{policy}-classifier-{digest[:10]}"


def classifier_copy(ref: PolicyRef, digest: str, model: FrozenModel) -> dict[str, Any]:
    """The immutable copy of the model entry (the same key, byte for byte)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            **object_meta(ref, classifier_copy_name(ref.name, digest)),
            "annotations": {ANNOTATION_CLASSIFIER_DIGEST: digest},
        },
        "immutable": True,
        model.field: {model.key: model.value},
    }


def _config(settings: dict[str, Any], path: str | None, cache_size: int) -> ClassifierConfig:
    doc = {k: v for k, v in settings.items() if k in _CONFIG_FIELDS}
    return ClassifierConfig.model_validate({**doc, "path": path, "cacheSize": cache_size})


def _spec_config(spec: RoutingPolicySpec, directory: str) -> ClassifierConfig:
    ref = spec.classifier.source.config_map_ref
    c = spec.classifier
    return ClassifierConfig(
        path=f"{directory}/{ref.key}" if ref is not None else None,
        input=c.input,
        max_input_chars=c.max_input_chars,
        tiering=c.tiering,
        session_messages=c.session_messages,
        cache_size=c.cache_size,
        tiers=c.tiers,
        no_text_tier=c.no_text_tier,
    )


def _stable(spec: RoutingPolicySpec, status: RoutingPolicyStatus) -> ClassifierSnapshot | None:
    """The deciding snapshot, when it is not simply the spec's classifier."""
    stable = status.stable_classifier
    if stable is None or not stable.settings:
        return None
    return stable


def classifier_configs(
    spec: RoutingPolicySpec, status: RoutingPolicyStatus
) -> tuple[ClassifierConfig, ClassifierConfig | None]:
    """(deciding classifier, decision-shadow candidate or None)."""
    stable = _stable(spec, status)
    if stable is None:
        deciding = _spec_config(spec, CLASSIFIER_DIR)
    else:
        path = f"{CLASSIFIER_DIR}/{stable.key}" if stable.digest else None
        deciding = _config(stable.settings, path, spec.classifier.cache_size)
    candidate = _spec_config(spec, CANDIDATE_DIR) if candidate_loaded(status) else None
    return deciding, candidate


def candidate_loaded(status: RoutingPolicyStatus) -> bool:
    """The candidate classifier runs beside the stable one: decision shadow or canary."""
    return rollout_shadow.running(status) or rollout_clfcanary.running(status)


def canary_weight(status: RoutingPolicyStatus) -> float:
    """The share of sessions the candidate classifier decides (0: it only scores)."""
    cc = status.classifier_canary
    return cc.weight if cc is not None and rollout_clfcanary.running(status) else 0.0


def classifier_volume_source(
    policy: str, spec: RoutingPolicySpec, status: RoutingPolicyStatus
) -> str | None:
    """The ConfigMap mounted as the deciding classifier: the frozen copy of the stable
    digest; the source itself only before its content was ever read (pods wait for it
    as they would for any missing ConfigMap)."""
    stable = _stable(spec, status)
    if stable is not None:
        return classifier_copy_name(policy, stable.digest) if stable.digest else None
    source = spec.classifier.source.config_map_ref
    if source is None:
        return None
    if status.classifier_digest:
        return classifier_copy_name(policy, status.classifier_digest)
    return source.name


def classifier_volumes(
    policy: str, spec: RoutingPolicySpec, status: RoutingPolicyStatus
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(volumes, mounts) of the router container for its classifier copies."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    deciding = classifier_volume_source(policy, spec, status)
    if deciding is not None:
        volumes.append({"name": "classifier", "configMap": {"name": deciding}})
        mounts.append({"name": "classifier", "mountPath": CLASSIFIER_DIR, "readOnly": True})
    if (
        candidate_loaded(status)
        and spec.classifier.source.config_map_ref is not None
        and status.classifier_digest
    ):
        name = classifier_copy_name(policy, status.classifier_digest)
        volumes.append({"name": "classifier-candidate", "configMap": {"name": name}})
        mounts.append(
            {"name": "classifier-candidate", "mountPath": CANDIDATE_DIR, "readOnly": True}
        )
    return volumes, mounts
