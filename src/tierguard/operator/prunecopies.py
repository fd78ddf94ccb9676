"""Pruning frozen copies (classifier models, judge prompt templates) that no revision
refers to any more.

Every classifier content the rollout adopts gets an immutable ConfigMap
``<policy>-classifier-<digest[:10]>``
(:func:`tierguard.operator.render_classifier.classifier_copy`), and every judge prompt
template (``router.shadow.judge.promptConfigMapRef``) one named
``<policy>-judge-prompt-<digest[:10]>`` (:func:`tierguard.operator.judgepromptcontent.prompt_copy`).
Without pruning they pile up: one per edit of the source, each up to 1 MiB in etcd, for
the life of the policy (owner references only clean them up when the policy goes).

Which copies stay: those whose digest the policy's status still refers to. Classifier
copies: the **target** (``status.classifierDigest``, what the revision rolls out) and the
**stable** classifier (``status.stableClassifier.digest``, and the decision shadow's two
digests: the copy a rollback returns to must outlive the rollout, because the source
ConfigMap may have been edited since and the copy cannot be made again). Judge prompt
copies: ``status.judgePromptDigest`` only. The judge is not an arm: both arms' answers
are judged by the one template the revision runs, a rollback changes the model split and
not the judge, and status keeps the digest while the source is unknown (unreadable or
unusable), so the template the routers run is always the referenced one. Every
other copy of *this* policy is deleted. A copy is named after its policy and owned by
it, so no other policy in the namespace can refer to it; only copies carrying the
kind's digest annotation, owned by the policy's uid and named as the renderer names them
for that digest are candidates (a user's ConfigMap that happens to match the label is
never touched, nor the judge prompt source the routers mount before its first read).

When: after the reconcile applied the rendered objects (the new copy exists and status
already names it), and only when the set of referenced digests changed since the last
prune of this policy by this process: one list call per change, not per reconcile. The
first reconcile after a start lists once, unless the policy refers to no copy at all (the
bundled model and the built-in judge prompt: 1,000 such policies cost no list calls; the
price: copies left by a switch to both that raced an operator restart stay until the
next change). Deletes carry a uid precondition, so a copy re-created in between is left
alone. A router pod of the previous ReplicaSet that still mounts a pruned copy keeps its
files (the kubelet does not unmount a deleted ConfigMap); only a restart of such a pod
during the Deployment's rollout would wait for the volume, and the rollout replaces it
anyway.

Pure selection (:func:`referenced`, :func:`frozen_copies`, :func:`to_prune`) and
one I/O function (:func:`prune`) that the controller calls.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from tierguard.api import constants as c
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.render_classifier import classifier_copy_name

if TYPE_CHECKING:
    from tierguard.operator.kube import Kube

log = logging.getLogger(__name__)

CopyKind = Literal["classifier", "judge prompt"]

#: Per kind of copy: its digest annotation and the renderer's name for (policy, digest).
_KINDS: Final[dict[CopyKind, tuple[str, Callable[[str, str], str]]]] = {
    "classifier": (c.ANNOTATION_CLASSIFIER_DIGEST, classifier_copy_name),
    "judge prompt": (c.ANNOTATION_JUDGE_PROMPT_DIGEST, jpc.copy_name),
}


@dataclass(frozen=True)
class FrozenCopy:
    """One frozen copy as listed."""

    name: str
    uid: str
    digest: str
    kind: CopyKind = "classifier"


@dataclass(frozen=True)
class Referenced:
    """The digests a status refers to, per kind of copy (hashable: the controller keeps
    the last one it pruned for)."""

    classifier: frozenset[str] = frozenset()
    judge_prompt: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not (self.classifier or self.judge_prompt)

    def keeps(self, cp: FrozenCopy) -> bool:
        return cp.digest in (self.classifier if cp.kind == "classifier" else self.judge_prompt)


def referenced_digests(status: RoutingPolicyStatus) -> frozenset[str]:
    """The classifier digests ``status`` refers to: the target, the stable classifier,
    and the decision shadow's two digests (kept while its status is: at most one change
    back, so a policy holds at most three copies)."""
    out = {status.classifier_digest}
    if status.stable_classifier is not None:
        out.add(status.stable_classifier.digest)
    if status.classifier_shadow is not None:
        out |= {status.classifier_shadow.stable_digest, status.classifier_shadow.candidate_digest}
    out.discard("")
    return frozenset(out)


def referenced(status: RoutingPolicyStatus) -> Referenced:
    """Every digest ``status`` refers to: the classifier ones (:func:`referenced_digests`)
    and the judge prompt the revision runs (one copy at most)."""
    prompt = frozenset({status.judge_prompt_digest} - {""})
    return Referenced(referenced_digests(status), prompt)


def frozen_copies(
    policy: str, policy_uid: str, configmaps: Iterable[Mapping[str, Any]]
) -> list[FrozenCopy]:
    """The policy's frozen copies among ``configmaps`` (as the API lists them): a kind's
    digest annotation, an owner reference to ``policy_uid``, and the renderer's name for
    that digest."""
    out = []
    for cm in configmaps:
        meta = cm.get("metadata") or {}
        annotations = meta.get("annotations") or {}
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == policy_uid for o in owners):
            continue
        for kind, (annotation, copy_name) in _KINDS.items():
            digest = annotations.get(annotation)
            if digest and meta.get("name") == copy_name(policy, str(digest)):
                out.append(
                    FrozenCopy(str(meta["name"]), str(meta.get("uid", "")), str(digest), kind)
                )
                break
    return out


def to_prune(copies: Iterable[FrozenCopy], keep: Referenced) -> list[FrozenCopy]:
    """The copies no referenced digest of their kind names, in name order."""
    return sorted((cp for cp in copies if not keep.keeps(cp)), key=lambda cp: cp.name)


def prune(kube: Kube, namespace: str, policy: str, policy_uid: str, keep: Referenced) -> list[str]:
    """List the policy's ConfigMaps, delete its unreferenced frozen copies; the names
    deleted. Raises the client's :class:`~tierguard.operator.kube.KubeError` on a failed
    list; a copy already gone or re-created (uid changed) is skipped."""
    from tierguard.operator.kube import NotFoundError, StatusConflictError

    listed = kube.list_configmaps(namespace, f"{c.LABEL_POLICY}={policy}")
    deleted = []
    for cp in to_prune(frozen_copies(policy, policy_uid, listed), keep):
        try:
            kube.delete_object("v1", "ConfigMap", namespace, cp.name, cp.uid)
        except (NotFoundError, StatusConflictError):
            continue
        deleted.append(cp.name)
        log.info(
            "%s/%s: pruned %s copy %s (digest %s)", namespace, policy, cp.kind, cp.name, cp.digest
        )
    return deleted
