"""Pruning frozen copies (classifier models and judge prompt templates): which ConfigMaps
are copies of the policy, and which of those no digest in its status refers to any more."""

from __future__ import annotations

from typing import Any

from tierguard.api import constants as c
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.prunecopies import (
    FrozenCopy,
    Referenced,
    frozen_copies,
    prune,
    referenced,
    referenced_digests,
    to_prune,
)
from tierguard.operator.render_classifier import classifier_copy_name

UID = "uid-support"
A, B, S = "a" * 16, "b" * 16, "5" * 16


def copy(policy: str, digest: str, owner: str = UID, name: str | None = None) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name or classifier_copy_name(policy, digest),
            "uid": f"cm-{digest[:4]}",
            "annotations": {c.ANNOTATION_CLASSIFIER_DIGEST: digest},
            "ownerReferences": [{"kind": c.KIND, "name": policy, "uid": owner}],
        }
    }


def test_only_the_policys_own_copies_are_candidates() -> None:
    listed = [
        copy("support", A),
        copy("support", B),
        copy("support", B, owner="uid-of-an-earlier-support"),  # a deleted namesake's
        copy("support", S, name="support-model"),  # a user's ConfigMap with the annotation
        {"metadata": {"name": "support-router", "uid": "x", "ownerReferences": [{"uid": UID}]}},
        copy("billing", A),  # another policy's copy (other name)
    ]
    got = frozen_copies("support", UID, listed)
    assert [cp.digest for cp in got] == [A, B]
    assert got[0] == FrozenCopy(classifier_copy_name("support", A), "cm-aaaa", A)


def test_copies_no_digest_refers_to_are_pruned() -> None:
    copies = frozen_copies("support", UID, [copy("support", d) for d in (B, A, S)])
    assert [cp.digest for cp in to_prune(copies, Referenced(frozenset({A})))] == [S, B]
    assert to_prune(copies, Referenced(frozenset({A, B, S}))) == []
    # the bundled model (no digest): every copy is garbage
    assert len(to_prune(copies, Referenced())) == 3


def test_referenced_digests_are_the_target_and_any_stable_one() -> None:
    from datetime import UTC, datetime

    from tierguard.api.classifierchange import ClassifierShadowStatus, ClassifierSnapshot

    status = RoutingPolicyStatus(classifier_digest=A)
    assert referenced_digests(status) == {A}
    assert referenced_digests(RoutingPolicyStatus()) == frozenset()
    changing = RoutingPolicyStatus(
        classifier_digest=B,
        stable_classifier=ClassifierSnapshot(digest=A),
        classifier_shadow=ClassifierShadowStatus(
            running=True, stable_digest=A, candidate_digest=S, started_at=datetime.now(UTC)
        ),
    )
    assert referenced_digests(changing) == {A, B, S}
    bundled_stable = RoutingPolicyStatus(
        classifier_digest=B, stable_classifier=ClassifierSnapshot(digest="")
    )
    assert referenced_digests(bundled_stable) == {B}


class FakeKube:
    """Records what prune asks of the API (the selection is what is under test)."""

    def __init__(self, items: list[dict[str, Any]], gone: frozenset[str] = frozenset()) -> None:
        self.items = items
        self.gone = gone
        self.selectors: list[str] = []
        self.deleted: list[tuple[str, str]] = []

    def list_configmaps(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        self.selectors.append(selector)
        return self.items

    def delete_object(
        self, api_version: str, kind: str, namespace: str, name: str, uid: str
    ) -> None:
        from tierguard.operator.kube import NotFoundError

        assert (api_version, kind) == ("v1", "ConfigMap")

        if name in self.gone:
            raise NotFoundError(name)
        self.deleted.append((name, uid))


def test_prune_deletes_with_the_uid_and_skips_copies_already_gone() -> None:
    kube = FakeKube(
        [copy("support", d) for d in (A, B, S)], gone=frozenset({"support-classifier-5555555555"})
    )
    out = prune(kube, "ns", "support", UID, Referenced(frozenset({A})))  # type: ignore[arg-type]
    assert kube.selectors == [f"{c.LABEL_POLICY}=support"]
    assert kube.deleted == [("support-classifier-bbbbbbbbbb", "cm-bbbb")]
    assert out == ["support-classifier-bbbbbbbbbb"]


def prompt_copy(policy: str, digest: str, owner: str = UID) -> dict[str, Any]:
    return {
        "metadata": {
            "name": jpc.copy_name(policy, digest),
            "uid": f"jp-{digest[:4]}",
            "annotations": {c.ANNOTATION_JUDGE_PROMPT_DIGEST: digest},
            "ownerReferences": [{"kind": c.KIND, "name": policy, "uid": owner}],
        }
    }


def test_judge_prompt_copies_are_candidates_of_their_own_kind() -> None:
    listed = [
        prompt_copy("support", A),
        prompt_copy("support", B, owner="uid-of-an-earlier-support"),
        # the digest annotation of the other kind on a judge prompt name: not a copy
        copy("support", S, name=jpc.copy_name("support", S)),
        # the judge prompt source a user named (the routers mount it before its first read)
        {"metadata": {"name": "prompt", "uid": "u", "ownerReferences": [{"uid": UID}]}},
        copy("support", A),
    ]
    got = frozen_copies("support", UID, listed)
    assert got == [
        FrozenCopy(jpc.copy_name("support", A), "jp-aaaa", A, "judge prompt"),
        FrozenCopy(classifier_copy_name("support", A), "cm-aaaa", A, "classifier"),
    ]


def test_a_digest_keeps_only_the_copy_of_its_own_kind() -> None:
    copies = frozen_copies(
        "support", UID, [copy("support", A), prompt_copy("support", A), prompt_copy("support", B)]
    )
    # the classifier runs A and the judge prompt is B: the judge prompt copy of A goes, even
    # though a classifier digest (of the same hex) is referenced
    keep = Referenced(frozenset({A}), frozenset({B}))
    assert [cp.name for cp in to_prune(copies, keep)] == [jpc.copy_name("support", A)]
    # the built-in template: every judge prompt copy goes, the classifier's stays
    assert [cp.kind for cp in to_prune(copies, Referenced(frozenset({A})))] == [
        "judge prompt",
        "judge prompt",
    ]


def test_the_judge_prompt_referenced_is_the_one_status_rolls_out() -> None:
    status = RoutingPolicyStatus(classifier_digest=A, judge_prompt_digest=B)
    assert referenced(status) == Referenced(frozenset({A}), frozenset({B}))
    assert referenced(RoutingPolicyStatus(judge_prompt_digest=B)) == Referenced(
        judge_prompt=frozenset({B})
    )
    assert referenced(RoutingPolicyStatus()).empty
    assert not referenced(RoutingPolicyStatus(judge_prompt_digest=B)).empty


def test_prune_deletes_an_edited_judge_prompts_old_copy() -> None:
    kube = FakeKube([copy("support", A), prompt_copy("support", A), prompt_copy("support", B)])
    status = RoutingPolicyStatus(classifier_digest=A, judge_prompt_digest=B)
    out = prune(kube, "ns", "support", UID, referenced(status))  # type: ignore[arg-type]
    assert kube.deleted == [(jpc.copy_name("support", A), "jp-aaaa")]
    assert out == ["support-judge-prompt-aaaaaaaaaa"]
