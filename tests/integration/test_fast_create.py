"""A new policy's objects are created with a plain POST, and stay the operator's to change
(on the real API server).

A POST leaves an ``Update`` entry of the operator's field manager in ``managedFields``; a
server-side apply by the same manager alone would not remove a field it stops rendering.
:meth:`Kube.apply` folds that entry into its ``Apply`` entry and applies again
(:mod:`tierguard.operator.managedfields`). Checked here: fields dropped from the render
after a fast create are removed (an env var, a label, a container port, a ConfigMap key);
a create of an object that exists answers False and the apply takes over; an object an
older operator created by server-side apply is applied as before (one request); the
Applier creates a new policy's objects with POSTs only. And the fold's race: another
writer changes the object between the fold's read and its patch (made to happen, by a
real write, through the seam :meth:`Kube._take_over`): the fold reads again and retries,
the other write stays; an object that changes before every try is left as applied, with
a warning, after ``ADOPTION_ATTEMPTS`` tries (``apply`` answers False: the Applier
applies it again at the next reconcile), and the next apply folds it.
"""

from __future__ import annotations

import copy
import logging
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import pytest

from operatorkit import install_crd, policy_manifest
from tierguard.api import constants as c
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator import render, rendermeta
from tierguard.operator.applier import Applier
from tierguard.operator.kube import ADOPTION_ATTEMPTS, Kube, StatusConflictError, resource_for
from tierguard.operator.rendermeta import RenderedMetadata

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane


def _spec() -> RoutingPolicySpec:
    doc = policy_manifest("p", "http://big.invalid", "http://small.invalid", "http://p.invalid")
    return RoutingPolicySpec.model_validate(doc["spec"])


def _ownerless(obj: dict[str, Any]) -> dict[str, Any]:
    """No owner: nothing for the garbage collector to act on in these kube-level tests."""
    out = copy.deepcopy(obj)
    out["metadata"].pop("ownerReferences", None)
    return out


def _deployment(namespace: str, name: str) -> dict[str, Any]:
    ref = rendermeta.PolicyRef(name, namespace, "00000000-0000-0000-0000-000000000001")
    return _ownerless(render.deployment(ref, _spec()))


def _with_extras(dep: dict[str, Any]) -> dict[str, Any]:
    """``dep`` with a label, an env var and a container port more (what an older render
    had and the next one drops)."""
    out = copy.deepcopy(dep)
    out["metadata"]["labels"]["tierguard.test/dropped"] = "yes"
    container = out["spec"]["template"]["spec"]["containers"][0]
    container["env"].append({"name": "DROPPED", "value": "1"})
    container["ports"].append({"name": "dropped", "containerPort": 9999, "protocol": "TCP"})
    return out


def _live(kube: Kube, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    out: dict[str, Any] = kube.read_object(
        obj["apiVersion"], obj["kind"], meta["namespace"], meta["name"]
    )
    return out


def _has_extras(live: dict[str, Any]) -> list[str]:
    container = live["spec"]["template"]["spec"]["containers"][0]
    found = []
    if "tierguard.test/dropped" in live["metadata"].get("labels", {}):
        found.append("label")
    if any(e["name"] == "DROPPED" for e in container.get("env", [])):
        found.append("env")
    if any(p.get("name") == "dropped" for p in container.get("ports", [])):
        found.append("port")
    return found


def _our_entries(live: dict[str, Any]) -> list[str]:
    return [
        e["operation"] for e in live["metadata"]["managedFields"] if e["manager"] == c.FIELD_MANAGER
    ]


def _requests(
    control_plane: ControlPlane, offset: int, namespace: str, kind_plural: str
) -> list[str]:
    """'verb' of every successful admin request on ``kind_plural`` in ``namespace``."""
    events, _ = control_plane.audit_events(offset)
    return [
        e["verb"]
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e.get("objectRef", {}).get("resource") == kind_plural
        and not e.get("objectRef", {}).get("subresource")
        and e.get("user", {}).get("username") == "admin"
        and e.get("verb") in {"create", "patch", "update"}
        and e.get("responseStatus", {}).get("code", 500) < 400
    ]


def test_fields_dropped_after_a_fast_create_are_removed(
    control_plane: ControlPlane, kube_api: ApiClient, namespace: str
) -> None:
    kube = Kube(kube_api)
    dep = _deployment(namespace, "fast")
    assert kube.create(_with_extras(dep)) is True
    live = _live(kube, dep)
    assert _has_extras(live) == ["label", "env", "port"]
    assert _our_entries(live) == ["Update"], "what a POST leaves"

    _, offset = control_plane.audit_events()
    kube.apply(dep)
    live = _live(kube, dep)
    assert _has_extras(live) == [], "the fields the render dropped are gone"
    assert _our_entries(live) == ["Apply"]
    assert _requests(control_plane, offset, namespace, "deployments") == ["patch"] * 3, (
        "apply, take over the Update entry, apply again"
    )

    # A ConfigMap key, the same way; and from then on an apply is one request.
    ref = rendermeta.PolicyRef("fast", namespace, "00000000-0000-0000-0000-000000000001")
    cm = _ownerless(render.config_map(ref, _spec(), RoutingPolicyStatus()))
    cm_more = copy.deepcopy(cm)
    cm_more["data"]["dropped.yaml"] = "x: 1"
    assert kube.create(cm_more) is True
    kube.apply(cm)
    assert "dropped.yaml" not in _live(kube, cm)["data"]
    _, offset = control_plane.audit_events()
    kube.apply(cm_more)
    kube.apply(cm)
    assert "dropped.yaml" not in _live(kube, cm)["data"]
    assert _requests(control_plane, offset, namespace, "configmaps") == ["patch", "patch"]


def test_a_create_of_an_existing_object_answers_false_and_apply_takes_over(
    kube_api: ApiClient, namespace: str
) -> None:
    kube = Kube(kube_api)
    dep = _deployment(namespace, "exists")
    assert kube.create(dep) is True
    assert kube.create(_with_extras(dep)) is False, "409 AlreadyExists"
    assert _has_extras(_live(kube, dep)) == [], "the existing object is left as it was"
    kube.apply(_with_extras(dep))
    assert _has_extras(_live(kube, dep)) == ["label", "env", "port"]
    kube.apply(dep)
    assert _has_extras(_live(kube, dep)) == []


def test_objects_an_older_operator_applied_are_applied_as_before(
    control_plane: ControlPlane, kube_api: ApiClient, namespace: str
) -> None:
    kube = Kube(kube_api)
    dep = _deployment(namespace, "older")
    kube._apply(_with_extras(dep))  # what the operator did before it created by POST
    _, offset = control_plane.audit_events()
    kube.apply(dep)
    live = _live(kube, dep)
    assert _has_extras(live) == []
    assert _our_entries(live) == ["Apply"]
    assert _requests(control_plane, offset, namespace, "deployments") == ["patch"]


def test_a_new_policys_objects_are_created_with_posts(
    control_plane: ControlPlane, kube_api: ApiClient, namespace: str
) -> None:
    from kubernetes import client

    install_crd(control_plane)
    manifest = policy_manifest(
        "p", "http://big.invalid", "http://small.invalid", "http://p.invalid"
    )
    api = client.CustomObjectsApi(kube_api)
    body = cast(
        dict[str, Any],
        api.create_namespaced_custom_object(c.GROUP, c.VERSION, namespace, c.PLURAL, manifest),
    )
    spec = RoutingPolicySpec.model_validate(body["spec"])
    applier = Applier(Kube(kube_api), RenderedMetadata())
    _, offset = control_plane.audit_events()
    error, _ = applier.apply_rendered(
        body, spec, RoutingPolicyStatus(), cc.ClassifierLookup(), jpc.JudgePromptLookup()
    )
    assert error is None
    events, _ = control_plane.audit_events(offset)
    writes = sorted(
        f"{e['verb']} {e['objectRef']['resource']}"
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e.get("user", {}).get("username") == "admin"
        and e.get("verb") in {"create", "patch", "update"}
    )
    ref = rendermeta.PolicyRef("p", namespace, body["metadata"]["uid"])
    kinds = sorted(
        f"create {resource_for(o).plural}"
        for o in render.render_all(ref, spec, RoutingPolicyStatus())
    )
    assert writes == sorted([*kinds, "create secrets"]), writes
    # Every object is the render, and the operator's to change.
    dep = _live(applier.kube, render.deployment(ref, spec))
    assert dep["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]
    assert _our_entries(dep) == ["Update"]

    # A second process that sees the policy before its Ready (a restart): the creates
    # answer 409, it applies instead, and takes the objects over.
    again = Applier(Kube(kube_api), RenderedMetadata())
    _, offset = control_plane.audit_events()
    error, _ = again.apply_rendered(
        body, spec, RoutingPolicyStatus(), cc.ClassifierLookup(), jpc.JudgePromptLookup()
    )
    assert error is None
    events, _ = control_plane.audit_events(offset)
    codes = Counter(
        (e["verb"], e.get("responseStatus", {}).get("code"))
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e.get("user", {}).get("username") == "admin"
        and e.get("verb") in {"create", "patch"}
    )
    assert codes[("create", 409)] == len(kinds) + 1, codes  # the objects and the Secret
    assert codes[("patch", 200)] == 3 * len(kinds), codes  # apply, take over, apply
    for obj in render.render_all(ref, spec, RoutingPolicyStatus()):
        assert _our_entries(_live(again.kube, obj)) == ["Apply"], obj["kind"]


#: The field manager of the writer that races the fold.
OTHER = "tierguard-test-other"


class _Racing(Kube):
    """A :class:`Kube` whose first ``races`` fold patches are each preceded by a real
    write of another field manager (a ConfigMap key ``other``, a new value each time):
    the patch then carries a resourceVersion that is no longer current, and the API
    server decides. ``tries`` records how each fold patch ended."""

    def __init__(self, api: ApiClient, races: int) -> None:
        super().__init__(api)
        self.races = races
        self.tries: list[str] = []

    def _take_over(self, obj: dict[str, Any], patch: dict[str, Any]) -> None:
        if len(self.tries) < self.races:
            from kubernetes import client

            meta = obj["metadata"]
            client.CoreV1Api(self.api).patch_namespaced_config_map(
                meta["name"],
                meta["namespace"],
                {"data": {"other": str(len(self.tries))}},
                field_manager=OTHER,
            )
        try:
            super()._take_over(obj, patch)
        except StatusConflictError:
            self.tries.append("conflict")
            raise
        self.tries.append("ok")


def _config_maps(namespace: str, name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A rendered ConfigMap, and what an older render created: a stale value of its key
    and one key more."""
    ref = rendermeta.PolicyRef(name, namespace, "00000000-0000-0000-0000-000000000001")
    cm = _ownerless(render.config_map(ref, _spec(), RoutingPolicyStatus()))
    older = copy.deepcopy(cm)
    older["data"] = {key: "stale: true" for key in cm["data"]}
    older["data"]["dropped.yaml"] = "x: 1"
    return cm, older


def _entries(live: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The managedFields entries of the main resource by (manager, operation)."""
    return {
        (e["manager"], e["operation"]): e["fieldsV1"]
        for e in live["metadata"]["managedFields"]
        if not e.get("subresource")
    }


def _fold_codes(control_plane: ControlPlane, offset: int, namespace: str) -> list[int]:
    """Response codes of the fold's patches (admin merge patches without a field
    manager: the applies and the other writer's patches name theirs)."""
    events, _ = control_plane.audit_events(offset)
    return [
        e.get("responseStatus", {}).get("code", 0)
        for e in events
        if e.get("objectRef", {}).get("namespace") == namespace
        and e.get("objectRef", {}).get("resource") == "configmaps"
        and e.get("user", {}).get("username") == "admin"
        and e.get("verb") == "patch"
        and "fieldManager=" not in e.get("requestURI", "")
    ]


def test_a_fold_that_loses_a_race_reads_again_and_keeps_the_other_write(
    control_plane: ControlPlane, kube_api: ApiClient, namespace: str
) -> None:
    kube = _Racing(kube_api, races=1)
    cm, older = _config_maps(namespace, "race")
    assert kube.create(older) is True
    _, offset = control_plane.audit_events()
    assert kube.apply(cm) is True
    assert kube.tries == ["conflict", "ok"], "the first patch lost, the second after a read won"
    assert _fold_codes(control_plane, offset, namespace) == [409, 200], "the API server's say"

    live = _live(kube, cm)
    assert live["data"] == {**cm["data"], "other": "0"}, "applied, dropped key gone, other kept"
    entries = _entries(live)
    assert (c.FIELD_MANAGER, "Update") not in entries, "the create's entry is folded"
    assert set(entries[(c.FIELD_MANAGER, "Apply")]["f:data"]) == {f"f:{k}" for k in cm["data"]}
    assert set(entries[(OTHER, "Update")]["f:data"]) == {"f:other"}, "the other's entry kept"


def test_a_fold_that_keeps_losing_leaves_the_object_applied_and_the_next_apply_folds(
    control_plane: ControlPlane,
    kube_api: ApiClient,
    namespace: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    kube = _Racing(kube_api, races=ADOPTION_ATTEMPTS)
    cm, older = _config_maps(namespace, "losing")
    assert kube.create(older) is True
    _, offset = control_plane.audit_events()
    with caplog.at_level(logging.WARNING, logger="tierguard.operator.kube"):
        done = kube.apply(cm)  # no error: the render is applied, the fold is left undone
    assert done is False, "the caller is told to apply it again"
    assert kube.tries == ["conflict"] * ADOPTION_ATTEMPTS
    assert _fold_codes(control_plane, offset, namespace) == [409] * ADOPTION_ATTEMPTS
    assert "ConfigMap" in caplog.text and "not taken over" in caplog.text
    live = _live(kube, cm)
    last = str(ADOPTION_ATTEMPTS - 1)  # the other writer's value before the last try
    assert live["data"] == {**cm["data"], "dropped.yaml": "x: 1", "other": last}, (
        "the render's values applied; the dropped key stays while the create's entry holds it"
    )
    assert sorted(_our_entries(live)) == ["Apply", "Update"]

    assert kube.apply(cm) is True  # no writer in the way now
    assert kube.tries[ADOPTION_ATTEMPTS:] == ["ok"]
    live = _live(kube, cm)
    assert live["data"] == {**cm["data"], "other": last}
    assert _our_entries(live) == ["Apply"]
