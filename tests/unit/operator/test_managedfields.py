"""Folding the Update entry a create by POST leaves into the operator's Apply entry."""

from __future__ import annotations

from typing import Any

from tierguard.operator.managedfields import adoption_patch, union

M = "tierguard-operator"


def _entry(manager: str, op: str, fields: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": op,
        "apiVersion": "v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
        **extra,
    }


def _live(*entries: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"resourceVersion": "42", "managedFields": list(entries)},
    }


def test_union_of_field_sets_keeps_every_leaf() -> None:
    a: dict[str, Any] = {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}
    b: dict[str, Any] = {"f:data": {".": {}, "f:b": {}}, "f:spec": {}}
    assert union(a, b) == {
        "f:data": {"f:a": {}, ".": {}, "f:b": {}},
        "f:metadata": {"f:labels": {"f:x": {}}},
        "f:spec": {},
    }
    assert a == {"f:data": {"f:a": {}}, "f:metadata": {"f:labels": {"f:x": {}}}}, "not mutated"


def test_nothing_to_take_over_without_an_update_entry_of_ours() -> None:
    applied = _entry(M, "Apply", {"f:data": {"f:a": {}}})
    someone = _entry("kubectl-edit", "Update", {"f:data": {"f:z": {}}})
    status = _entry(M, "Update", {"f:status": {}}, subresource="status")
    assert adoption_patch(_live(applied, someone, status), M) is None
    assert adoption_patch({"metadata": {}}, M) is None


def test_our_update_entry_is_folded_into_the_apply_entry_and_others_stay() -> None:
    applied = _entry(M, "Apply", {"f:data": {"f:a": {}}}, time="t1")
    created = _entry(M, "Update", {"f:data": {".": {}, "f:a": {}, "f:b": {}}}, time="t0")
    someone = _entry("kubectl-edit", "Update", {"f:data": {"f:z": {}}})
    patch = adoption_patch(_live(created, applied, someone), M)
    assert patch is not None
    assert patch["metadata"]["resourceVersion"] == "42", "guarded by the version read"
    entries = patch["metadata"]["managedFields"]
    assert someone in entries
    ours = [e for e in entries if e["manager"] == M]
    assert len(ours) == 1 and ours[0]["operation"] == "Apply" and ours[0]["time"] == "t1"
    assert ours[0]["fieldsV1"] == {"f:data": {"f:a": {}, ".": {}, "f:b": {}}}


def test_an_update_entry_alone_becomes_an_apply_entry() -> None:
    created = _entry(M, "Update", {"f:data": {"f:b": {}}})
    patch = adoption_patch(_live(created), M)
    assert patch is not None
    (entry,) = patch["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"], entry["apiVersion"]) == (M, "Apply", "v1")
    assert entry["fieldsV1"] == {"f:data": {"f:b": {}}}


def test_an_update_entry_of_another_api_version_is_left_alone() -> None:
    old = _entry(M, "Update", {"f:data": {"f:b": {}}})
    old["apiVersion"] = "v1beta1"
    assert adoption_patch(_live(old), M) is None
