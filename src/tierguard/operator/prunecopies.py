"""Pruning frozen classifier copies that no revision refers to any more.

Every classifier content the rollout adopts gets an immutable ConfigMap
``<policy>-classifier-<digest[:10]>`` (:func:`tierguard.operator.render.classifier_copy`).
Without pruning they pile up: one per edit of the source, each up to 1 MiB in etcd, for
the life of the policy (owner references only clean them up when the policy goes).

Which copies stay: those whose digest the policy's status still refers to, the **target**
(``status.classifierDigest``, what the revision rolls out) and the **stable** classifier
(``status.stableClassifier.digest``, and the decision shadow's two digests: the copy a
rollback returns to must outlive the rollout, because the source ConfigMap may have been
edited since and the copy cannot be made again). Every
other copy of *this* policy is deleted. A copy is named after its policy and owned by
it, so no other policy in the namespace can refer to it; only copies carrying the
digest annotation, owned by the policy's uid and named as the renderer names them are
candidates (a user's ConfigMap that happens to match the label is never touched).

When: after the reconcile applied the rendered objects (the new copy exists and status
already names it), and only when the set of referenced digests changed since the last
prune of this policy by this process: one list call per change, not per reconcile. The
first reconcile after a start lists once, unless the policy runs the bundled model (so
1,000 bundled-model policies cost no list calls; the price: copies left by a switch to
the bundled model that raced an operator restart stay until the next classifier change).
Deletes carry a uid precondition, so a copy re-created in between is left alone. A router
pod of the previous ReplicaSet that still mounts a pruned copy keeps its files (the
kubelet does not unmount a deleted ConfigMap); only a restart of such a pod during the
Deployment's rollout would wait for the volume, and the rollout replaces it anyway.

Pure selection (:func:`referenced_digests`, :func:`frozen_copies`, :func:`to_prune`) and
one I/O function (:func:`prune`) that the controller calls.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tierguard.api import constants as c
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator.render import classifier_copy_name

if TYPE_CHECKING:
    from tierguard.operator.kube import Kube

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FrozenCopy:
    """One frozen classifier copy as listed."""

    name: str
    uid: str
    digest: str


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


def frozen_copies(
    policy: str, policy_uid: str, configmaps: Iterable[Mapping[str, Any]]
) -> list[FrozenCopy]:
    """The policy's frozen classifier copies among ``configmaps`` (as the API lists them):
    the digest annotation, an owner reference to ``policy_uid``, and the renderer's name
    for that digest."""
    out = []
    for cm in configmaps:
        meta = cm.get("metadata") or {}
        digest = (meta.get("annotations") or {}).get(c.ANNOTATION_CLASSIFIER_DIGEST)
        if not digest or meta.get("name") != classifier_copy_name(policy, str(digest)):
            continue
        owners = meta.get("ownerReferences") or []
        if not any(o.get("uid") == policy_uid for o in owners):
            continue
        out.append(FrozenCopy(str(meta["name"]), str(meta.get("uid", "")), str(digest)))
    return out


def to_prune(copies: Iterable[FrozenCopy], referenced: frozenset[str]) -> list[FrozenCopy]:
    """The copies no referenced digest names, in name order."""
    return sorted((cp for cp in copies if cp.digest not in referenced), key=lambda cp: cp.name)


def prune(
    kube: Kube, namespace: str, policy: str, policy_uid: str, referenced: frozenset[str]
) -> list[str]:
    """List the policy's ConfigMaps, delete its unreferenced frozen copies; the names
    deleted. Raises the client's :class:`~tierguard.operator.kube.KubeError` on a failed
    list; a copy already gone or re-created (uid changed) is skipped."""
    from tierguard.operator.kube import NotFoundError, StatusConflictError

    listed = kube.list_configmaps(namespace, f"{c.LABEL_POLICY}={policy}")
    deleted = []
    for cp in to_prune(frozen_copies(policy, policy_uid, listed), referenced):
        try:
            kube.delete_configmap(namespace, cp.name, cp.uid)
        except (NotFoundError, StatusConflictError):
            continue
        deleted.append(cp.name)
        log.info(
            "%s/%s: pruned classifier copy %s (digest %s)", namespace, policy, cp.name, cp.digest
        )
    return deleted
