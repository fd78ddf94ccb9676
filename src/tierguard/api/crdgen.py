"""Generate the RoutingPolicy CustomResourceDefinition from the pydantic models.

The API server accepts only *structural* schemas (every node typed, no ``$ref``, no
``anyOf`` with types, OpenAPI v3.0 keywords), while pydantic emits JSON Schema 2020-12.
:func:`to_structural` bridges the two; anything it does not understand is an error, so
a new model feature cannot silently produce a CRD the API server rejects.

Run ``tierguard gen-crds`` after changing a model; a unit test fails while the committed
YAML under ``crds/`` differs from what this module generates.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, NoDefault
from pydantic_core import core_schema, to_jsonable_python

from tierguard.api import constants as c
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus

DEFAULT_OUT = Path("crds") / f"{c.CRD_NAME}.yaml"

# Keywords the CRD schema accepts and we pass through unchanged.
_PASS = {
    "type",
    "description",
    "default",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "pattern",
    "format",
    "required",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "nullable",
}
# Keywords dropped on purpose: titles clutter `kubectl explain`; discriminator is pydantic's.
_DROP = {"title", "discriminator"}


class SchemaConversionError(ValueError):
    """A pydantic schema feature has no structural-schema equivalent."""


def _resolve(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = node.get("$ref")
    if ref is None:
        return node
    target: dict[str, Any] = copy.deepcopy(defs[ref.split("/")[-1]])
    # Sibling keys of $ref (description, default, CEL) describe this use; they win.
    target.update({k: v for k, v in node.items() if k != "$ref"})
    return target


def to_structural(node: dict[str, Any], defs: dict[str, Any], path: str = "") -> dict[str, Any]:
    """Convert one pydantic JSON-schema node into a structural CRD schema node."""
    node = _resolve(node, defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v.get("type") != "null"]
        if len(variants) != 1:
            raise SchemaConversionError(f"{path or '<root>'}: unions are not supported in CRDs")
        merged = {k: v for k, v in node.items() if k != "anyOf"}
        if merged.get("default", 0) is None:
            merged.pop("default")
        inner = _resolve(variants[0], defs)
        return to_structural({**inner, **merged}, defs, path)
    if "allOf" in node and len(node["allOf"]) == 1:
        merged = {k: v for k, v in node.items() if k != "allOf"}
        return to_structural({**_resolve(node["allOf"][0], defs), **merged}, defs, path)

    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key == "$defs":
            continue
        if key == "properties":
            out["properties"] = {
                name: to_structural(sub, defs, f"{path}.{name}") for name, sub in value.items()
            }
        elif key == "items":
            out["items"] = to_structural(value, defs, f"{path}[]")
        elif key == "additionalProperties":
            if value is True or value == {}:
                out["x-kubernetes-preserve-unknown-fields"] = True
            elif value is not False:
                out["additionalProperties"] = to_structural(value, defs, f"{path}{{}}")
        elif key in ("exclusiveMinimum", "exclusiveMaximum"):
            if isinstance(value, bool):
                out[key] = value
            else:  # JSON Schema 2020 numeric form -> OpenAPI v3.0 boolean form
                bound = "minimum" if key == "exclusiveMinimum" else "maximum"
                out[bound] = value
                out[key] = True
        elif key == "const":
            out["enum"] = [value]
        elif key in _PASS:
            out[key] = value
        else:
            raise SchemaConversionError(f"{path or '<root>'}: unsupported schema keyword {key!r}")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        if "properties" in out:
            out["type"] = "object"
        elif "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            raise SchemaConversionError(f"{path or '<root>'}: node has no type")
    free_form = "properties" not in out and "additionalProperties" not in out
    if out.get("type") == "object" and free_form:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "integer" and isinstance(out.get("default"), float):
        out["default"] = int(out["default"])
    return out


class _FactoryDefaults(GenerateJsonSchema):
    """Emit ``default_factory`` defaults too, so the CRD shows (and the API server applies)
    every default the models declare. A nested object defaults to ``{}``: the API server
    then fills in its fields' own defaults, so each default is written once, in its field."""

    def get_default_value(self, schema: core_schema.WithDefaultSchema) -> Any:
        factory = schema.get("default_factory")
        if factory is None or schema.get("default_factory_takes_data"):
            return super().get_default_value(schema)
        value = factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return {}
        if isinstance(value, list):
            return [
                v.model_dump(mode="json", by_alias=True, exclude_none=True)
                if isinstance(v, BaseModel)
                else to_jsonable_python(v)
                for v in value
            ]
        return to_jsonable_python(value) if value is not None else NoDefault


def model_schema(model: type[Any]) -> dict[str, Any]:
    raw: dict[str, Any] = model.model_json_schema(
        by_alias=True, mode="validation", schema_generator=_FactoryDefaults
    )
    return to_structural(raw, raw.get("$defs", {}))


PRINTER_COLUMNS: list[dict[str, Any]] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
    {"name": "Step", "type": "string", "jsonPath": ".status.stepDisplay"},
    {"name": "Weight", "type": "number", "jsonPath": ".status.canaryWeight"},
    {"name": "Verdicts", "type": "string", "jsonPath": ".status.verdictSummary"},
    {
        "name": "Message",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
]


def build_crd() -> dict[str, Any]:
    """The CRD as a plain dict, ready for YAML or the apiextensions API."""
    spec_schema = model_schema(RoutingPolicySpec)
    spec_schema["description"] = (RoutingPolicySpec.__doc__ or "").strip()
    status_schema = model_schema(RoutingPolicyStatus)
    status_schema["description"] = (RoutingPolicyStatus.__doc__ or "").strip()
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": c.CRD_NAME,
            "labels": {
                "app.kubernetes.io/name": "tierguard",
                "app.kubernetes.io/part-of": "tierguard",
            },
        },
        "spec": {
            "group": c.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": c.KIND,
                "listKind": f"{c.KIND}List",
                "plural": c.PLURAL,
                "singular": c.SINGULAR,
                "shortNames": list(c.SHORT_NAMES),
                "categories": list(c.CATEGORIES),
            },
            "versions": [
                {
                    "name": c.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": (
                                "RoutingPolicy routes LLM queries by tier and rolls a cheaper "
                                "candidate model out stage by stage, judged per tier against "
                                "a control arm."
                            ),
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


HEADER = "# GENERATED by `tierguard gen-crds` from src/tierguard/api; do not edit by hand.\n"


def render_crd_yaml() -> str:
    return HEADER + yaml.safe_dump(build_crd(), sort_keys=False, width=100)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output file ('-': stdout)")
    parser.add_argument(
        "--check", action="store_true", help="exit 1 if the file differs instead of writing it"
    )


def run(args: argparse.Namespace) -> int:
    text = render_crd_yaml()
    if str(args.out) == "-":
        sys.stdout.write(text)
        return 0
    out: Path = args.out
    if args.check:
        current = out.read_text() if out.exists() else ""
        if current != text:
            print(f"{out} is stale: run `tierguard gen-crds`", file=sys.stderr)
            return 1
        return 0
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")
    return 0
