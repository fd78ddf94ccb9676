"""The judge prompt template in a ConfigMap as part of the revision (issue 16 item 3),
without a cluster: hashed by content (an edit is a new revision, a rename is not), an
unreadable or unusable template is unknown and holds, and the routers mount an immutable
copy named by digest."""

from __future__ import annotations

from typing import Any

from test_preflight import REF, T0, spec

from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import render, render_routerconfig
from tierguard.operator import rollout as r
from tierguard.operator.revision import compute_revision

TEMPLATE = "{question}\nAnswer A:\n{answer_a}\nAnswer B:\n{answer_b}\nRef: {reference}\n"
TEMPLATE += "Say [[A]], [[B]] or [[TIE]]."


def ref_spec(name: str = "judge-prompt", key: str = "prompt") -> RoutingPolicySpec:
    doc = spec().to_k8s()
    doc["router"]["shadow"]["judge"]["promptConfigMapRef"] = {"name": name, "key": key}
    return RoutingPolicySpec.model_validate(doc)


def configmap(text: str, key: str = "prompt") -> dict[str, Any]:
    return {"data": {key: text}}


def cond(st: RoutingPolicyStatus) -> Any:
    return next(c for c in st.conditions if c.type == ConditionType.JUDGE_PROMPT_RESOLVED)


def test_lookup_digests_content_not_the_reference() -> None:
    a = jpc.lookup(ref_spec(), configmap(TEMPLATE))
    renamed = jpc.lookup(ref_spec("other", "p2"), configmap(TEMPLATE, "p2"))
    edited = jpc.lookup(ref_spec(), configmap(TEMPLATE + " "))
    assert a.digest and a.digest == renamed.digest != edited.digest
    assert a.text == TEMPLATE and not a.unknown
    assert jpc.lookup(spec(), None) == jpc.BUILTIN


def test_an_unusable_template_or_missing_key_is_unknown_with_the_reason() -> None:
    bad = jpc.lookup(ref_spec(), configmap(TEMPLATE.replace("{reference}", "{refrence}")))
    assert bad.unknown and "unknown placeholder(s) {refrence}" in (bad.error or "")
    missing = jpc.lookup(ref_spec(), configmap(TEMPLATE, "other"))
    assert missing.unknown and "no key 'prompt'" in (missing.error or "")
    binary = jpc.lookup(ref_spec(), {"binaryData": {"prompt": "/w=="}})
    assert binary.unknown and "not UTF-8" in (binary.error or "")


def test_the_builtin_prompt_leaves_revisions_as_they_were() -> None:
    st = r.reconcile(spec(), None, T0).status
    assert st.revision == compute_revision(spec()) and st.judge_prompt_digest == ""
    assert not any(c.type == ConditionType.JUDGE_PROMPT_RESOLVED for c in st.conditions)


def test_an_edit_is_a_new_revision_a_rename_is_not() -> None:
    sp = ref_spec()
    a = jpc.lookup(sp, configmap(TEMPLATE))
    st = r.reconcile(sp, None, T0, judge_prompt=a).status
    assert st.phase == Phase.PROGRESSING and st.judge_prompt_digest == a.digest
    assert st.revision and st.revision != compute_revision(spec())
    assert cond(st).status == "True" and a.digest in cond(st).message
    renamed = ref_spec("copy")
    same = jpc.lookup(renamed, configmap(TEMPLATE))
    d = r.reconcile(renamed, st, T0, generation=2, judge_prompt=same)
    assert d.status.revision == st.revision
    assert Reason.ROLLOUT_STARTED.value not in [e.reason for e in d.events]
    edited = jpc.lookup(sp, configmap(TEMPLATE.replace("Say", "Reply")))
    d = r.reconcile(sp, st, T0, generation=2, judge_prompt=edited)
    assert d.status.revision != st.revision and d.status.judge_prompt_digest == edited.digest
    assert d.events[0].reason == Reason.ROLLOUT_STARTED.value


def test_unknown_content_holds_never_changes_the_revision_and_warns_once() -> None:
    sp = ref_spec()
    st = r.reconcile(sp, None, T0, judge_prompt=jpc.lookup(sp, configmap(TEMPLATE))).status
    gone = jpc.lookup(sp, None, "ConfigMap default/judge-prompt not found")
    d = r.reconcile(sp, st, T0, judge_prompt=gone)
    assert (d.status.revision, d.status.judge_prompt_digest) == (
        st.revision,
        st.judge_prompt_digest,
    )
    assert cond(d.status).status == "False"
    assert cond(d.status).reason == Reason.JUDGE_PROMPT_UNKNOWN.value
    assert "cannot use the judge prompt" in d.status.message and "holds" in d.status.message
    assert [e.reason for e in d.events] == [Reason.JUDGE_PROMPT_UNKNOWN.value]
    again = r.reconcile(sp, d.status, T0, judge_prompt=gone)
    assert again.events == []
    # never read at all (a spec with a reference): no revision yet
    first = r.reconcile(sp, None, T0, judge_prompt=gone).status
    assert first.revision == "" and first.phase == Phase.PENDING


def test_routers_mount_the_frozen_copy_named_by_digest() -> None:
    sp = ref_spec()
    a = jpc.lookup(sp, configmap(TEMPLATE))
    st = r.reconcile(sp, None, T0, judge_prompt=a).status
    objs = render.render_all(REF, sp, st, judge_prompt=a)
    name = jpc.copy_name(REF.name, a.digest)
    copy = next(o for o in objs if o["metadata"]["name"] == name)
    assert copy["immutable"] is True and copy["data"] == {"prompt": TEMPLATE}
    pod = next(o for o in objs if o["kind"] == "Deployment")["spec"]["template"]["spec"]
    vol = next(v for v in pod["volumes"] if v["name"] == "judge-prompt")
    assert vol["configMap"]["name"] == name
    config = render_routerconfig.router_config(REF, sp, st)
    assert config.shadow.judge_prompt_path == f"{jpc.JUDGE_PROMPT_DIR}/prompt"
    assert config.shadow.judge_prompt_digest == a.digest
    # content read now is another digest than status rolls out: no copy of it
    other = jpc.lookup(sp, configmap(TEMPLATE + "!"))
    assert not any(
        o["metadata"]["name"].startswith(f"{REF.name}-judge-prompt-")
        for o in render.render_all(REF, sp, st, judge_prompt=other)
    )
    assert render_routerconfig.router_config(REF, spec(), st).shadow.judge_prompt_path is None


def test_an_edited_classifier_does_not_move_while_the_judge_prompt_is_unknown() -> None:
    """One content unknown holds both: status keeps the digests (and the routers the
    copies) of the revision that runs, even when the other content changed."""
    from test_classifier_rollout import configmap as model_cm

    from tierguard.operator import classifiercontent as cc

    doc = ref_spec().to_k8s()
    doc["classifier"]["source"] = {"configMapRef": {"name": "clf", "key": "model.onnx"}}
    sp = RoutingPolicySpec.model_validate(doc)
    first = r.reconcile(
        sp,
        None,
        T0,
        classifier=cc.lookup(sp, model_cm(b"model-a")),
        judge_prompt=jpc.lookup(sp, configmap(TEMPLATE)),
    ).status
    gone = jpc.lookup(sp, None, "forbidden")
    d = r.reconcile(
        sp, first, T0, classifier=cc.lookup(sp, model_cm(b"model-b")), judge_prompt=gone
    )
    assert (d.status.revision, d.status.classifier_digest, d.status.judge_prompt_digest) == (
        first.revision,
        first.classifier_digest,
        first.judge_prompt_digest,
    )
    back = jpc.lookup(sp, configmap(TEMPLATE))
    d = r.reconcile(
        sp, d.status, T0, classifier=cc.lookup(sp, model_cm(b"model-b")), judge_prompt=back
    )
    assert d.status.revision != first.revision
    assert d.status.classifier_digest != first.classifier_digest
