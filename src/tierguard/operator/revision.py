"""The revision hash: *what* is being rolled out, as one short string.

A rollout is a change of behaviour for users, so the hash covers everything that changes
the answers a tier's users get: which model is the candidate (and its endpoint, upstream
model id and system prompt), which is the baseline it is judged against, and the
classifier that puts queries in tiers. The classifier counts by its **content**: for a
model in a ConfigMap, its content digest (model bytes and tier-deciding settings, see
:mod:`tierguard.api.classifierdigest`), so editing the ConfigMap's bytes or a threshold
is a new revision and the same bytes under a new ConfigMap name are not; for the bundled
model, the settings (its bytes are the router image's). The pairwise judge's prompt
template counts the same way when it is in a ConfigMap (``judge.promptConfigMapRef``):
by its content digest (:mod:`tierguard.api.judgeprompt`); the built-in template adds
nothing (so policies without a reference keep their revision). It leaves out
what only changes *how* the rollout is run or judged (steps, bake time, SLOs, Prometheus,
replicas, prices, timeouts): editing a bake time must not restart a rollout that is half
way through, and a price change does not change a single answer.

No candidate on any route means there is nothing to roll out: the revision is ``""``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from tierguard.api.policy import ModelSpec, RoutingPolicySpec

REVISION_LENGTH = 10


def _model_identity(model: ModelSpec) -> dict[str, Any]:
    return {
        "name": model.name,
        "baseURL": model.base_url,
        "upstreamModel": model.upstream_model,
        "systemPrompt": model.system_prompt,
    }


def revision_material(
    spec: RoutingPolicySpec, classifier_digest: str = "", judge_prompt_digest: str = ""
) -> dict[str, Any] | None:
    """The canonical document the revision hashes (None: no candidate anywhere).

    ``classifier_digest``: the content digest of the ConfigMap classifier; required when
    the spec references one (a reference alone says nothing about the content).
    ``judge_prompt_digest``: likewise for the judge prompt template's ConfigMap."""
    routes = [r for r in spec.routes if r.candidate is not None]
    if not routes:
        return None
    names = sorted({n for r in routes for n in (r.baseline, r.candidate) if n is not None})
    known = {m.name: m for m in spec.models}
    material: dict[str, Any] = {
        "routes": sorted(
            ({"tier": r.tier, "baseline": r.baseline, "candidate": r.candidate} for r in routes),
            key=lambda d: str(d["tier"]),
        ),
        "models": [_model_identity(known[n]) for n in names if n in known],
        "classifier": _classifier_material(spec, classifier_digest),
    }
    if spec.router.shadow.judge.prompt_config_map_ref is not None:
        if not judge_prompt_digest:
            raise ValueError(
                "the judge prompt is in a ConfigMap: the revision needs its content digest"
            )
        material["judgePrompt"] = judge_prompt_digest
    return material


#: classifier fields added after v0.1 whose default must not change the revision of a
#: policy that does not set them (an operator upgrade must not restart every rollout)
_NEW_FIELD_DEFAULTS = {"tiering": "Session", "sessionMessages": 0}


def _classifier_material(spec: RoutingPolicySpec, digest: str) -> dict[str, Any]:
    """The classifier as it decides tiers. A ConfigMap model: its content digest (which
    covers the settings too). The bundled model: the settings as before content digests
    existed (so an operator upgrade leaves those revisions alone): ``cacheSize`` only
    saves work (left out); the session-tiering fields count when set to something other
    than their default."""
    if spec.classifier.source.config_map_ref is not None:
        if not digest:
            raise ValueError(
                "the classifier is in a ConfigMap: the revision needs its content digest"
            )
        return {"digest": digest}
    material = spec.classifier.to_k8s()
    material.pop("cacheSize", None)
    for key, default in _NEW_FIELD_DEFAULTS.items():
        if material.get(key) == default:
            del material[key]
    return material


def compute_revision(
    spec: RoutingPolicySpec, classifier_digest: str = "", judge_prompt_digest: str = ""
) -> str:
    """Short, stable hash of :func:`revision_material` ("" when there is no candidate)."""
    material = revision_material(spec, classifier_digest, judge_prompt_digest)
    if material is None:
        return ""
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:REVISION_LENGTH]


def split_salt(policy_uid: str, revision: str, attempt: int = 0) -> str:
    """Hash salt for the sticky split.

    Stable for the whole rollout of one revision (every replica and every step uses it, so
    raising the weight only moves users from control to canary, never back), and new for
    a new revision and for every retry (``attempt``), so a candidate is not tried on the
    same users again: users are the unit of independence, and reusing the ones a rolled
    back attempt saw would carry their idiosyncrasies into the new test.
    """
    material = f"{policy_uid}/{revision}" if attempt == 0 else f"{policy_uid}/{revision}/{attempt}"
    return hashlib.sha256(material.encode()).hexdigest()[:16]
