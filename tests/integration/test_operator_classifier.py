"""Classifier changes as a rollout, against the real API server (issue 17 items 4, 6):
the operator (a subprocess with its least-privilege identity) reads the referenced
ConfigMap, rolls out by content digest, freezes an immutable copy the routers mount, and
holds when the ConfigMap cannot be read. The pairwise judge's prompt template in a
ConfigMap counts the same way (issue 16 item 3).

No routers run here (the gates hold without data; rollout.noData.after is long): only
manual promotes and ConfigMap edits move the rollout, so every assertion is about what
the classifier's content did.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from test_operator import POLICY
from test_operator import Cluster as OperatorCluster

from operatorkit import (
    OperatorProcess,
    Routed,
    policy_manifest,
)
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import constants as c
from tierguard.api.enums import ConditionType, KeySource, Phase, Reason, StickinessKey
from tierguard.api.status import Condition, RoutingPolicyStatus
from tierguard.api.stickiness import key_sources
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import render_classifier, rendermeta

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.prometheus import Prometheus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODEL_A = b"\x08\x07model-a\x00\xff" * 50
MODEL_B = b"\x08\x07model-b\x00\xff" * 50
MODEL_C = b"\x08\x07model-c\x00\xff" * 50


class Cluster(OperatorCluster):
    """test_operator's Cluster (status, events, router config) plus the classifier
    ConfigMap and the Deployment's mounts."""

    def __init__(self, kube_api: ApiClient, namespace: str) -> None:
        from kubernetes import client

        super().__init__(kube_api, namespace)
        self.apps = client.AppsV1Api(kube_api)

    def patch(self, body: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            c.GROUP, c.VERSION, self.ns, c.PLURAL, POLICY, body
        )

    def put_model(self, name: str, model: bytes) -> None:
        """Create or replace the classifier ConfigMap (as `kubectl apply` would)."""
        self.put_config_map(name, binaryData={"model.onnx": base64.b64encode(model).decode()})

    def put_config_map(self, name: str, **content: dict[str, str]) -> None:
        """Create or replace a ConfigMap (as `kubectl apply` would)."""
        from kubernetes.client.exceptions import ApiException

        body: Any = {"metadata": {"name": name}, **content}
        try:
            self.core.create_namespaced_config_map(self.ns, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.core.replace_namespaced_config_map(name, self.ns, body)

    def config_map_exists(self, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.read_namespaced_config_map(name, self.ns)
        except ApiException as exc:
            assert exc.status == 404
            return False
        return True

    def mounted(self, volume: str = "classifier") -> str:
        dep: Any = self.apps.read_namespaced_deployment(rendermeta.object_name(POLICY), self.ns)
        vols = {v.name: v for v in dep.spec.template.spec.volumes}
        return str(vols[volume].config_map.name) if volume in vols else ""


def manifest(prom_url: str, configmap: str = "clf") -> dict[str, Any]:
    doc: dict[str, Any] = policy_manifest(
        POLICY,
        "http://127.0.0.1:1",
        "http://127.0.0.1:2",
        prom_url,
        steps=[10, 25, 50, 100],
        bake="1h",
        no_data_after="10m",
    )
    doc["spec"]["classifier"]["source"] = {"configMapRef": {"name": configmap}}
    # content digests and frozen copies are the subject here: a classifier change ends
    # with its decision shadow (no classifier canary, which needs traffic)
    doc["spec"]["rollout"]["classifierCanary"] = {"enabled": False}
    return doc


@pytest.fixture
def cluster(crd: None, kube_api: ApiClient, namespace: str) -> Cluster:
    return Cluster(kube_api, namespace)


def _resolved(st: RoutingPolicyStatus) -> Condition | None:
    return next((x for x in st.conditions if x.type == ConditionType.CLASSIFIER_RESOLVED), None)


def _until(
    cluster: Cluster, wait_for: Any, op: OperatorProcess, what: str
) -> Callable[[Callable[[RoutingPolicyStatus], bool]], RoutingPolicyStatus]:
    def wait(pred: Callable[[RoutingPolicyStatus], bool]) -> RoutingPolicyStatus:
        return wait_for(  # type: ignore[no-any-return]
            lambda: s if pred(s := cluster.status()) else None,
            timeout=60,
            message=f"{what}; operator log:\n{op.log()}",
        )

    return wait


def _promote(cluster: Cluster, wait_for: Any, op: OperatorProcess, nonce: str) -> None:
    step = cluster.status().step
    cluster.patch(
        {
            "metadata": {
                "annotations": {c.ANNOTATION_ACTION: "promote", c.ANNOTATION_ACTION_NONCE: nonce}
            }
        }
    )
    _until(cluster, wait_for, op, f"promote {nonce}")(lambda s: s.step == step + 1)


def test_editing_the_classifier_bytes_restarts_at_the_first_step_on_a_frozen_copy(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    cluster.put_model("clf", MODEL_A)
    cluster.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, cluster.ns, c.PLURAL, manifest(prometheus.url)
    )
    until = _until(cluster, wait_for, operator, "waiting")
    first = until(lambda s: s.phase == Phase.PROGRESSING and bool(s.classifier_digest))
    cond = _resolved(first)
    assert cond is not None and cond.status == "True" and cond.reason == Reason.CLASSIFIER_READ
    copy_a = render_classifier.classifier_copy_name(POLICY, first.classifier_digest)
    live: Any = wait_for(
        lambda: cluster.core.read_namespaced_config_map(copy_a, cluster.ns),
        timeout=30,
        message="the frozen copy",
    )
    assert live.immutable is True
    assert base64.b64decode(live.binary_data["model.onnx"]) == MODEL_A
    assert live.metadata.owner_references[0].name == POLICY
    wait_for(lambda: cluster.mounted() == copy_a, timeout=30, message="routers mount the copy")
    _promote(cluster, wait_for, operator, "p1")
    assert cluster.status().canary_weight == 25.0

    # The source is edited mid-rollout: a new revision from the first step, on a new copy;
    # its first stage is the decision shadow: the frozen copy A decides.
    cluster.put_model("clf", MODEL_B)
    new = until(lambda s: s.revision != first.revision)
    # (the model split stays as it was, at 25 %, while the new classifier is judged)
    assert (new.phase, new.step, new.canary_weight) == (Phase.PROGRESSING, 0, 25.0)
    assert new.classifier_digest != first.classifier_digest
    assert new.history[-1].reason == Reason.ROLLOUT_STARTED.value
    assert new.classifier_shadow is not None and new.classifier_shadow.running
    copy_b = render_classifier.classifier_copy_name(POLICY, new.classifier_digest)
    wait_for(
        lambda: cluster.mounted() == copy_a and cluster.mounted("classifier-candidate") == copy_b,
        timeout=30,
        message="routers mount A (deciding) and B (candidate)",
    )
    frozen_b: Any = cluster.core.read_namespaced_config_map(copy_b, cluster.ns)
    assert base64.b64decode(frozen_b.binary_data["model.onnx"]) == MODEL_B
    # The API server refuses to change a frozen copy.
    from kubernetes.client.exceptions import ApiException

    frozen_b.binary_data = {"model.onnx": base64.b64encode(MODEL_A).decode()}
    with pytest.raises(ApiException) as refused:
        cluster.core.replace_namespaced_config_map(copy_b, cluster.ns, frozen_b)
    assert refused.value.status == 422 and "immutable" in str(refused.value.body)
    # Copies no digest in status refers to are pruned: A stays while it is the stable
    # classifier of the change; once B decides and the next edit (C) starts another change
    # (stable B, candidate C), nothing refers to A any more.
    from tierguard.operator.prunecopies import referenced_digests

    present = cluster.config_map_exists
    assert first.classifier_digest in referenced_digests(cluster.status())
    assert present(copy_a)
    cluster.patch(  # a promote ends the decision shadow: B decides
        {
            "metadata": {
                "annotations": {c.ANNOTATION_ACTION: "promote", c.ANNOTATION_ACTION_NONCE: "p2"}
            }
        }
    )
    until(lambda s: s.classifier_shadow is not None and not s.classifier_shadow.running)
    cluster.put_model("clf", MODEL_C)
    third = until(lambda s: s.revision not in (first.revision, new.revision))
    copy_c = render_classifier.classifier_copy_name(POLICY, third.classifier_digest)
    assert referenced_digests(third) == {new.classifier_digest, third.classifier_digest}
    wait_for(lambda: not present(copy_a), timeout=30, message="copy A pruned")
    assert present(copy_b) and wait_for(lambda: present(copy_c), timeout=30, message="copy C")


def test_status_names_the_session_key_the_split_uses(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    """Issue 15: status.stickiness, through the real API server (the CRD's schema keeps
    it): the key after the API server's defaults, and a later edit of the key observed
    with a new `since`."""
    cluster.put_model("clf", MODEL_A)
    cluster.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, cluster.ns, c.PLURAL, manifest(prometheus.url)
    )
    until = _until(cluster, wait_for, operator, "waiting")
    first = until(lambda s: s.stickiness is not None).stickiness
    assert first is not None and first.since is not None
    assert (first.key, first.header) == (StickinessKey.SESSION, "x-session-id")
    assert first.sources == list(key_sources(StickinessKey.SESSION))
    cluster.patch({"spec": {"rollout": {"stickiness": {"key": "user"}}}})
    moved = until(lambda s: s.stickiness is not None and s.stickiness.key == StickinessKey.USER)
    assert moved.stickiness is not None and moved.stickiness.since is not None
    assert moved.stickiness.header == "x-tierguard-user" and moved.stickiness.since > first.since
    assert moved.stickiness.sources[0] == KeySource.USER


def test_same_bytes_under_a_new_name_keep_the_revision_and_a_missing_one_holds(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    cluster.put_model("clf", MODEL_A)
    cluster.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, cluster.ns, c.PLURAL, manifest(prometheus.url)
    )
    until = _until(cluster, wait_for, operator, "waiting")
    first = until(lambda s: s.phase == Phase.PROGRESSING and bool(s.classifier_digest))
    _promote(cluster, wait_for, operator, "p1")

    # The same bytes under a new ConfigMap name: no new revision, the stage goes on.
    cluster.put_model("clf-renamed", MODEL_A)
    cluster.patch({"spec": {"classifier": {"source": {"configMapRef": {"name": "clf-renamed"}}}}})
    renamed = until(lambda s: s.observed_generation >= 2)
    assert (renamed.revision, renamed.step, renamed.classifier_digest) == (
        first.revision,
        1,
        first.classifier_digest,
    )
    assert len(cluster.events(Reason.ROLLOUT_STARTED.value)) == 1

    # The referenced ConfigMap disappears: unknown, never changed. The rollout holds
    # where it is, says why, and the routers keep the frozen copy.
    cluster.core.delete_namespaced_config_map("clf-renamed", cluster.ns)
    held = until(lambda s: (x := _resolved(s)) is not None and x.status == "False")
    cond = _resolved(held)
    assert cond is not None and cond.reason == Reason.CLASSIFIER_UNKNOWN
    assert "clf-renamed" in cond.message and "not found" in cond.message, cond.message
    assert "holds at step 2" in cond.message
    assert (held.revision, held.step, held.phase) == (first.revision, 1, Phase.PROGRESSING)
    assert cluster.mounted() == render_classifier.classifier_copy_name(
        POLICY, first.classifier_digest
    )
    wait_for(
        lambda: cluster.events(Reason.CLASSIFIER_UNKNOWN.value),
        timeout=30,
        message="a ClassifierUnknown Event",
    )
    # Back with the same bytes: resolved again, same revision, same step.
    cluster.put_model("clf-renamed", MODEL_A)
    back = until(lambda s: (x := _resolved(s)) is not None and x.status == "True")
    assert (back.revision, back.step) == (first.revision, 1)
    assert len(cluster.events(Reason.ROLLOUT_STARTED.value)) == 1


PROMPT = (
    "Question: {question}\nReference: {reference}\nAnswer A:\n{answer_a}\nAnswer B:\n"
    "{answer_b}\nReply [[A]], [[B]] or [[TIE]]."
)


def test_the_judge_prompt_counts_by_content_in_the_revision(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    """Issue 16 item 3: the pairwise judge's prompt template in a ConfigMap is part of
    the revision by content, frozen into an immutable copy the routers mount. The same
    bytes under a new name keep the revision; editing the content starts a new one, and
    the old copy, which nothing refers to any more, is pruned."""

    def put_prompt(name: str, text: str) -> None:
        cluster.put_config_map(name, data={"prompt": text})

    def mounted_prompt() -> str:
        return cluster.mounted("judge-prompt")

    cluster.put_model("clf", MODEL_A)
    put_prompt("prompt-a", PROMPT)
    doc = manifest(prometheus.url)
    doc["spec"]["models"].append(
        {"name": "judge", "baseURL": "http://127.0.0.1:3/v1", "upstreamModel": "j"}
    )
    doc["spec"]["router"]["shadow"] = {
        "judge": {
            "type": "LLM",
            "mode": "Pairwise",
            "model": "judge",
            "promptConfigMapRef": {"name": "prompt-a"},
        }
    }
    doc["spec"]["rollout"]["preflight"] = {"enabled": False}
    cluster.custom.create_namespaced_custom_object(c.GROUP, c.VERSION, cluster.ns, c.PLURAL, doc)
    until = _until(cluster, wait_for, operator, "waiting")
    first = until(lambda s: s.phase == Phase.PROGRESSING and bool(s.judge_prompt_digest))
    copy_a = jpc.copy_name(POLICY, first.judge_prompt_digest)
    frozen: Any = wait_for(
        lambda: cluster.core.read_namespaced_config_map(copy_a, cluster.ns),
        timeout=30,
        message="the frozen judge prompt copy",
    )
    assert frozen.immutable is True and frozen.data == {"prompt": PROMPT}
    wait_for(lambda: mounted_prompt() == copy_a, timeout=30, message="routers mount the copy")

    # The same bytes under a new ConfigMap name: the same revision, nothing restarts.
    put_prompt("prompt-b", PROMPT)
    ref_b = {"name": "prompt-b", "key": "prompt"}
    cluster.patch({"spec": {"router": {"shadow": {"judge": {"promptConfigMapRef": ref_b}}}}})
    renamed = until(lambda s: s.observed_generation >= 2)
    assert (renamed.revision, renamed.judge_prompt_digest) == (
        first.revision,
        first.judge_prompt_digest,
    )
    assert len(cluster.events(Reason.ROLLOUT_STARTED.value)) == 1

    # The content is edited mid-rollout: a new revision on a new frozen copy.
    put_prompt("prompt-b", PROMPT.replace("Reply", "Answer with"))
    new = until(lambda s: s.revision != first.revision)
    assert new.judge_prompt_digest != first.judge_prompt_digest and new.step == 0
    assert new.history[-1].reason == Reason.ROLLOUT_STARTED.value
    copy_b = jpc.copy_name(POLICY, new.judge_prompt_digest)
    wait_for(lambda: mounted_prompt() == copy_b, timeout=30, message="routers mount the new copy")
    # Nothing refers to copy A any more (the judge is not an arm: no rollback returns to
    # it): it is pruned; B, the user's two sources and the classifier's copy stay.
    present = cluster.config_map_exists
    wait_for(lambda: not present(copy_a), timeout=30, message="judge prompt copy A pruned")
    assert present(copy_b) and present("prompt-a") and present("prompt-b")
    assert present(render_classifier.classifier_copy_name(POLICY, new.classifier_digest))


def test_a_policy_whose_classifier_configmap_is_missing_waits_pending(
    cluster: Cluster, operator: OperatorProcess, prometheus: Prometheus, wait_for: Any
) -> None:
    cluster.custom.create_namespaced_custom_object(
        c.GROUP, c.VERSION, cluster.ns, c.PLURAL, manifest(prometheus.url, "nowhere")
    )
    until = _until(cluster, wait_for, operator, "waiting")
    st = until(lambda s: _resolved(s) is not None)
    cond = _resolved(st)
    assert cond is not None and (cond.status, cond.reason) == ("False", Reason.CLASSIFIER_UNKNOWN)
    assert st.phase == Phase.PENDING and st.revision == "" and "nowhere" in st.message
    cluster.put_model("nowhere", MODEL_A)
    started = until(lambda s: s.phase == Phase.PROGRESSING)
    assert started.classifier_digest and started.step == 0


def test_a_router_on_another_classifier_holds_the_stage_until_it_runs_the_target(
    cluster: Cluster,
    operator: OperatorProcess,
    tiny_classifier: Path,
    routed: Routed,
    wait_for: Any,
) -> None:
    """A real router (fed by the rendered ConfigMap; its model file is the tiny
    classifier) scraped by a real Prometheus. While the policy's ConfigMap holds other
    bytes, the router's tierguard_classifier_info is off target: the stage holds and no
    evidence counts. Once the ConfigMap holds what the router runs, a new revision starts
    at the first step and, every router on target, it advances."""
    cluster.put_model("clf", b"not the model the router runs")
    with routed(POLICY) as rs:
        doc = rs.manifest(no_data_after="10m")
        doc["spec"]["classifier"]["source"] = {"configMapRef": {"name": "clf"}}
        # the edit below is a classifier change: a short decision shadow comes first
        doc["spec"]["rollout"]["classifierShadow"] = {"minRequests": 1, "minDuration": "0s"}
        doc["spec"]["rollout"]["classifierCanary"] = {"enabled": False}
        traffic = rs.serve(doc).traffic
        until = _until(cluster, wait_for, operator, "waiting")
        first = until(lambda s: s.phase == Phase.PROGRESSING)
        # Until Prometheus has scraped the router's classifier info the hold may first say
        # that no router reports it: wait for the look that names the router's digest.
        off_target = "1/1 router(s) not on classifier " + first.classifier_digest
        held = wait_for(
            lambda: off_target in (s := cluster.status()).message and s,
            timeout=120,
            message=f"a hold naming the router's classifier; operator log:\n{operator.log()}",
        )
        # (the Event is created just after the status write the wait above saw)
        wait_for(
            lambda: cluster.events(Reason.ROUTERS_NOT_ON_TARGET.value),
            timeout=10,
            message="a RoutersNotOnTarget Event",
        )
        assert (held.revision, held.step) == (first.revision, 0)
        # Traffic flows, yet nothing was counted for the stage.
        assert traffic.seen
        counted = [(g.control.samples, g.canary.samples) for t in held.tiers for g in t.signals]
        assert counted and all(n == (0, 0) for n in counted), held.tiers

        cluster.put_model("clf", tiny_classifier.read_bytes())
        on_target = until(lambda s: s.revision != first.revision)
        assert on_target.step == 0
        advanced = wait_for(
            lambda: (s := cluster.status()).step >= 1 and s,
            timeout=240,
            message=f"never advanced on target; operator log:\n{operator.log()}",
        )
        assert advanced.revision == on_target.revision
