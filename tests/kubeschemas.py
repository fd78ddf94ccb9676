"""JSON schemas for kubeconform, generated from a running API server's OpenAPI v3
documents (its built-in kinds plus every CRD installed on it), so manifests are checked
against exactly what the testbed's kube-apiserver serves, with no download at test time.

The conversion (:func:`schemas_from_openapi`) is pure: every kind named by an
``x-kubernetes-group-version-kind`` becomes one standalone schema with all ``$ref``s
inlined (a recursive reference, such as a CRD's JSONSchemaProps, becomes "anything"),
``nullable`` spelled as JSON Schema's ``null`` type, int-or-string as integer-or-string,
and — for ``kubeconform -strict`` — ``additionalProperties: false`` on every object that
lists its properties and does not preserve unknown fields (what kubeconform's
"-standalone-strict" schemas do).

Files are laid out for the template :data:`SCHEMA_LOCATION`
(``<group>/<kind>-<version>.json``; the core group is ``v1``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

#: kubeconform -schema-location template for a directory written by :func:`write_schemas`.
SCHEMA_LOCATION = (
    "{dir}/{{{{ .Group }}}}/{{{{ .ResourceKind }}}}-{{{{ .ResourceAPIVersion }}}}.json"
)

Schema = dict[str, Any]


def _strict(schema: Schema) -> None:
    if (
        schema.get("type") in ("object", ["object", "null"])
        and "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        schema["additionalProperties"] = False


def _inline(node: Any, components: dict[str, Schema], stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(n, components, stack) for n in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack or name not in components:
            return {}  # recursive (e.g. JSONSchemaProps) or unknown: accept anything
        target = _inline(components[name], components, (*stack, name))
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return {**target, **_inline(rest, components, stack)} if rest else target
    out: Schema = {}
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions"):
            out[key] = {k: _inline(v, components, stack) for k, v in value.items()}
        else:
            out[key] = _inline(value, components, stack)
    # OpenAPI v3 wraps a reference with siblings (default, description) in allOf.
    if list(out.get("allOf", [])) and len(out["allOf"]) == 1 and isinstance(out["allOf"][0], dict):
        only = out.pop("allOf")[0]
        out = {**only, **out}
    if out.get("x-kubernetes-int-or-string"):
        out.pop("format", None)
        out["type"] = ["integer", "string"]
    if out.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    _strict(out)
    return out


def schemas_from_openapi(documents: Iterable[dict[str, Any]]) -> dict[str, Schema]:
    """``{"<group>/<kind>-<version>.json": schema}`` for every kind in the documents."""
    out: dict[str, Schema] = {}
    for doc in documents:
        components = doc.get("components", {}).get("schemas", {})
        for name, schema in components.items():
            for gvk in schema.get("x-kubernetes-group-version-kind", []):
                group = gvk["group"] or gvk["version"]
                path = f"{group}/{gvk['kind'].lower()}-{gvk['version']}.json"
                standalone = _inline(copy.deepcopy(schema), components, (name,))
                standalone["$schema"] = (
                    "http://json-schema.org/draft-04/schema#"  # OpenAPI 3.0 keywords
                )
                out.setdefault(path, standalone)
    return out


def fetch_openapi(get_raw: Callable[[str], str]) -> list[dict[str, Any]]:
    """Every group-version document the server publishes (``get_raw(path) -> body``)."""
    index = json.loads(get_raw("/openapi/v3"))
    return [json.loads(get_raw(entry["serverRelativeURL"])) for entry in index["paths"].values()]


def write_schemas(schemas: dict[str, Schema], root: Path) -> str:
    """Write the schemas under ``root``; return kubeconform's -schema-location for them."""
    for rel, schema in schemas.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema))
    return SCHEMA_LOCATION.format(dir=root)
