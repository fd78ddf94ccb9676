"""The OpenAPI v3 → kubeconform schema conversion (tests/kubeschemas.py)."""

from __future__ import annotations

from kubeschemas import SCHEMA_LOCATION, schemas_from_openapi

DOC = {
    "components": {
        "schemas": {
            "io.k8s.api.apps.v1.Deployment": {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "apps", "version": "v1", "kind": "Deployment"}
                ],
                "properties": {
                    "apiVersion": {"type": "string"},
                    "metadata": {
                        "allOf": [{"$ref": "#/components/schemas/ObjectMeta"}],
                        "default": {},
                    },
                    "spec": {"$ref": "#/components/schemas/Spec"},
                },
            },
            "ObjectMeta": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "labels": {"type": "object"}},
            },
            "Spec": {
                "type": "object",
                "properties": {
                    "port": {"x-kubernetes-int-or-string": True, "format": "int-or-string"},
                    "note": {"type": "string", "nullable": True},
                    "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True,
                             "properties": {"a": {"type": "string"}}},
                    "props": {"$ref": "#/components/schemas/Props"},
                },
            },
            "Props": {
                "type": "object",
                "properties": {"items": {"$ref": "#/components/schemas/Props"}},
            },
            "io.k8s.api.core.v1.Service": {
                "type": "object",
                "x-kubernetes-group-version-kind": [
                    {"group": "", "version": "v1", "kind": "Service"}
                ],
            },
        }
    }
}  # fmt: skip


def test_kinds_become_standalone_strict_schemas() -> None:
    out = schemas_from_openapi([DOC])
    assert set(out) == {"apps/deployment-v1.json", "v1/service-v1.json"}
    dep = out["apps/deployment-v1.json"]
    assert dep["additionalProperties"] is False
    meta = dep["properties"]["metadata"]
    assert "allOf" not in meta and meta["properties"]["name"] == {"type": "string"}
    assert meta["additionalProperties"] is False
    spec = dep["properties"]["spec"]["properties"]
    assert spec["port"]["type"] == ["integer", "string"] and "format" not in spec["port"]
    assert spec["note"]["type"] == ["string", "null"]
    assert "additionalProperties" not in spec["free"]
    # A recursive reference ends in "anything" instead of looping.
    assert spec["props"]["properties"]["items"] == {}
    assert "$ref" not in str(dep)


def test_schema_location_matches_the_layout() -> None:
    loc = SCHEMA_LOCATION.format(dir="/s")
    assert loc == "/s/{{ .Group }}/{{ .ResourceKind }}-{{ .ResourceAPIVersion }}.json"
