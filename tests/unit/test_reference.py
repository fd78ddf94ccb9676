"""docs/reference.md is generated from the API models and must be committed fresh."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tierguard.api.crdgen import build_crd
from tierguard.api.reference import render_reference

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "docs" / "reference.md"


def test_committed_reference_is_fresh() -> None:
    assert REFERENCE.read_text() == render_reference(), (
        "docs/reference.md is stale: regenerate it from tierguard.api.reference.render_reference()"
    )


def _leaf_paths(node: dict[str, Any], path: str) -> set[str]:
    out = set()
    for name, sub in node.get("properties", {}).items():
        out.add(f"{path}.{name}")
        out |= _leaf_paths(sub, f"{path}.{name}")
        if sub.get("type") == "array":
            out |= _leaf_paths(sub.get("items", {}), f"{path}.{name}[]")
    return out


def test_every_field_and_rule_is_documented() -> None:
    text = render_reference()
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for root in ("spec", "status"):
        for path in _leaf_paths(schema["properties"][root], root):
            parent, _, name = path.rpartition(".")
            assert f"### `{parent}`" in text, parent
            assert f"| `{name}` |" in text, path

    def rules(node: dict[str, Any]) -> list[dict[str, Any]]:
        found = list(node.get("x-kubernetes-validations", []))
        for sub in node.get("properties", {}).values():
            found += rules(sub)
        if isinstance(node.get("items"), dict):
            found += rules(node["items"])
        return found

    all_rules = rules(schema)
    assert len(all_rules) > 10
    for rule in all_rules:
        assert rule["message"] in text and rule["rule"] in text
