"""The operator's watches of the kinds it renders: filtered by the API server, and an
object that leaves the filter (its label edited away) still counts as drift."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, cast

import kopf
import pytest
from kopf._cogs.structs.references import Resource

from tierguard.api import constants as c
from tierguard.operator import handlers, rendermeta
from tierguard.operator.controller import Controller, ControllerSettings


def _settings() -> kopf.OperatorSettings:
    settings = kopf.OperatorSettings()
    configure = cast(Any, handlers.configure)  # kopf types it as its activity callback
    asyncio.run(configure(settings=settings, memo=kopf.Memo()))
    return settings


def test_owned_kinds_are_watched_through_a_server_side_label_selector() -> None:
    settings = _settings()
    selectors = settings.watching.label_selectors
    for group, version, plural in handlers.OWNED:
        res = Resource(group=group, version=version, plural=plural, namespaced=True)
        assert list(selectors.collect(res)) == [handlers.OWNED_SELECTOR], plural
    # The policies and kopf's own resources are not filtered: the operator needs them all.
    others = [
        Resource(group=c.GROUP, version=c.VERSION, plural=c.PLURAL, namespaced=True),
        Resource(group="", version="v1", plural="namespaces"),
        Resource(group="kopf.dev", version="v1", plural="kopfpeerings", namespaced=True),
        Resource(group="", version="v1", plural="secrets", namespaced=True),
        Resource(group="apps", version="v1", plural="replicasets", namespaced=True),
    ]
    for res in others:
        assert list(selectors.collect(res)) == [], res.plural
    assert handlers.OWNED_SELECTOR == "app.kubernetes.io/managed-by=tierguard-operator"
    assert settings.watching.chunk_size == handlers.LIST_CHUNK


def test_the_rendered_objects_carry_the_label_the_watches_select() -> None:
    """What the watches select is what the renderer writes, for every owned kind."""
    key, _, value = handlers.OWNED_SELECTOR.partition("=")
    assert rendermeta.labels("p")[key] == value


def _owned(policy_label: bool, owner: dict[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "tierguard-p", "namespace": "ns"}
    if policy_label:
        meta["labels"] = {c.LABEL_POLICY: "p"}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta}


def test_an_object_is_traced_to_its_policy_by_its_controller_reference() -> None:
    ref = rendermeta.owner_reference(rendermeta.PolicyRef("p", "ns", "uid-1"))
    assert handlers._owner_policy(_owned(False, ref)) == "p"
    assert handlers._owner_policy(_owned(False, None)) is None
    assert handlers._owner_policy(_owned(False, {**ref, "controller": False})) is None
    assert handlers._owner_policy(_owned(False, {**ref, "kind": "Deployment"})) is None
    other_group = {**ref, "apiVersion": "example.com/v1"}
    assert handlers._owner_policy(_owned(False, other_group)) is None


@pytest.fixture
def controller() -> Iterator[Controller]:
    ctl = Controller(None, ControllerSettings(query_round_seconds=0))  # type: ignore[arg-type]
    saved = handlers.CONTROLLER
    handlers.CONTROLLER = ctl
    try:
        yield ctl
    finally:
        handlers.CONTROLLER = saved
        handlers.WAKERS.pop(("ns", "p"), None)


def _event(type_: str | None, body: dict[str, Any]) -> bool:
    """Deliver one owned-object event; True if it woke policy ns/p."""

    async def deliver() -> bool:
        wake = asyncio.Event()
        handlers.WAKERS[("ns", "p")] = wake
        kbody = kopf.Body(cast(Any, body))
        await handlers._owned_event(
            resource=Resource(group="", version="v1", plural="configmaps", kind="ConfigMap"),
            body=kbody,
            type=type_,
            namespace="ns",
            labels=kbody.metadata.labels,
        )
        return wake.is_set()

    return asyncio.run(deliver())


def test_an_object_whose_labels_were_edited_away_wakes_its_policy(
    controller: Controller,
) -> None:
    """The filtered watch reports an object that lost its label as DELETED, with its
    labels as they are now: the controller reference still names the policy."""
    ref = rendermeta.owner_reference(rendermeta.PolicyRef("p", "ns", "uid-1"))
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "tierguard-p",
            "namespace": "ns",
            "labels": rendermeta.labels("p"),
            "ownerReferences": [ref],
        },
        "data": {"k": "v"},
    }
    controller.applied.record("ns", "p", "uid-1", [applied])
    assert not _event("MODIFIED", applied), "what was applied: no drift"
    stripped = _owned(False, ref)
    assert _event("DELETED", stripped), "left the filter: re-apply"
    assert controller.applied.due("ns", "p", "uid-1", [applied]) == [0]
    # Nothing names a policy: nothing to wake, and no error.
    controller.applied.record("ns", "p", "uid-1", [applied])
    assert not _event("DELETED", _owned(False, None))
