"""Render docs/reference.md, the RoutingPolicy reference, from the API models.

The reference walks the CRD's structural schema as :mod:`tierguard.api.crdgen` builds it
from the pydantic models, so the page shows exactly what the API server enforces: every
field with its type, default, limits and description, and every CEL rule with the
message ``kubectl apply`` prints. A unit test fails while the committed page differs from
:func:`render_reference`; nothing in it is written by hand.
"""

from __future__ import annotations

import json
from typing import Any

from tierguard.api import constants as c
from tierguard.api.crdgen import PRINTER_COLUMNS, build_crd
from tierguard.api.enums import Action

HEADER = (
    "<!-- GENERATED from src/tierguard/api by tierguard.api.reference.render_reference(); "
    "do not edit by hand. -->\n"
)


def _anchor(path: str) -> str:
    return path.replace("[]", "-items").replace(".", "-").lower()


def _cell(text: str) -> str:
    """Markdown table cells: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")


def _code(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))
    return f"`{text}`"


def _type(node: dict[str, Any], path: str) -> str:
    kind = node.get("type")
    if "enum" in node:
        return "enum"
    if kind == "array":
        items: dict[str, Any] = node.get("items", {})
        if items.get("type") == "object" and "properties" in items:
            return f"[[]object](#{_anchor(path + '[]')})"
        return f"[]{_type(items, path + '[]')}"
    if kind == "object":
        if "properties" in node:
            return f"[object](#{_anchor(path)})"
        extra = node.get("additionalProperties")
        if isinstance(extra, dict):
            return f"map[string]{extra.get('type', 'any')}"
        return "object (free-form)"
    fmt = node.get("format")
    return f"{kind} ({fmt})" if fmt else str(kind)


def _constraints(node: dict[str, Any], required: bool) -> list[str]:
    out: list[str] = []
    if required:
        out.append("**Required.**")
    if "enum" in node:
        out.append("One of " + ", ".join(_code(v) for v in node["enum"]) + ".")
    lo, hi = node.get("minimum"), node.get("maximum")
    if lo is not None or hi is not None:
        left = "(" if node.get("exclusiveMinimum") else "["
        right = ")" if node.get("exclusiveMaximum") else "]"
        lo_s = "-∞" if lo is None else json.dumps(lo)
        hi_s = "∞" if hi is None else json.dumps(hi)
        out.append(f"Range {left}{lo_s}, {hi_s}{right}.")
    for key, label in (
        ("minLength", "Min length"),
        ("maxLength", "Max length"),
        ("minItems", "Min items"),
        ("maxItems", "Max items"),
    ):
        if key in node:
            out.append(f"{label} {node[key]}.")
    if "pattern" in node:
        out.append(f"Pattern {_code(node['pattern'])}.")
    items = node.get("items")
    if isinstance(items, dict) and "properties" not in items:
        inner = _constraints(items, False)
        if inner:
            out.append("Each item: " + " ".join(inner))
    return out


def _rules(node: dict[str, Any]) -> list[str]:
    rules: list[dict[str, Any]] = node.get("x-kubernetes-validations", [])
    lines = []
    for r in rules:
        where = f" (reported at `{r['fieldPath']}`)" if "fieldPath" in r else ""
        lines.append(f"- {r['message']}{where}: `{r['rule']}`")
    return lines


def _section(path: str, node: dict[str, Any], out: list[str]) -> None:
    """One object: a heading, its description, a field table, its rules; then children."""
    out.append(f'<a id="{_anchor(path)}"></a>\n')
    out.append(f"### `{path}`\n")
    if node.get("description"):
        out.append(" ".join(str(node["description"]).split()) + "\n")
    props: dict[str, dict[str, Any]] = node.get("properties", {})
    required = set(node.get("required", []))
    out.append("| Field | Type | Default | Description |")
    out.append("|---|---|---|---|")
    for name, sub in props.items():
        child = f"{path}.{name}"
        desc = " ".join([sub.get("description", ""), *_constraints(sub, name in required)])
        default = _cell(_code(sub["default"])) if "default" in sub else ""
        out.append(f"| `{name}` | {_type(sub, child)} | {default} | {_cell(desc)} |")
    out.append("")
    for sub_node, sub_path in [(node, path), *_rule_holders(props, path)]:
        rules = _rules(sub_node)
        if rules:
            label = "this object" if sub_path == path else f"`{sub_path}`"
            out.append(f"Validation rules on {label} (CEL, enforced by the API server):\n")
            out.extend(rules)
            out.append("")
    for name, sub in props.items():
        child = f"{path}.{name}"
        if sub.get("type") == "object" and "properties" in sub:
            _section(child, sub, out)
        elif sub.get("type") == "array":
            items = sub.get("items", {})
            if items.get("type") == "object" and "properties" in items:
                _section(child + "[]", items, out)


def _rule_holders(props: dict[str, dict[str, Any]], path: str) -> list[tuple[dict[str, Any], str]]:
    """Scalar and list fields carry their own CEL rules; objects print theirs in their
    own section."""
    return [
        (sub, f"{path}.{name}")
        for name, sub in props.items()
        if "properties" not in sub and sub.get("x-kubernetes-validations")
    ]


def render_reference() -> str:
    """The whole reference page as Markdown."""
    crd = build_crd()
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    out: list[str] = [HEADER, "# RoutingPolicy reference\n"]
    out.append(" ".join(schema["description"].split()) + "\n")
    out.append("| | |\n|---|---|")
    out.append(f"| apiVersion | `{c.API_VERSION}` |")
    out.append(f"| kind | `{c.KIND}` |")
    out.append(f"| scope | {crd['spec']['scope']} |")
    out.append(f"| plural / singular | `{names['plural']}` / `{names['singular']}` |")
    out.append(f"| short names | {', '.join(f'`{n}`' for n in names['shortNames'])} |")
    out.append(f"| categories | {', '.join(f'`{n}`' for n in names['categories'])} |")
    out.append(f"| CRD | `{c.CRD_NAME}` (status subresource) |\n")
    out.append(
        "`kubectl explain routingpolicy.spec --recursive` shows the same schema from the "
        "cluster. Defaults are filled in by the API server, so `kubectl get rpol NAME -o "
        "yaml` shows every value the operator will use.\n"
    )
    out.append("## `kubectl get` columns\n")
    out.append("| Column | Field | Shown |\n|---|---|---|")
    for col in PRINTER_COLUMNS:
        shown = "with `-o wide`" if col.get("priority", 0) else "always"
        out.append(f"| {col['name']} | `{col['jsonPath']}` | {shown} |")
    out.append("")
    out.append("## Manual actions (annotations)\n")
    out.append(
        f"Set `{c.ANNOTATION_ACTION}` to one of "
        + ", ".join(f"`{a.value}`" for a in Action)
        + f" and `{c.ANNOTATION_ACTION_NONCE}` to a new value (any string that differs "
        "from the last one). The operator acts once per distinct (action, nonce), records it "
        "in `status.lastHandledAction` and never edits the annotations, so a Git commit, "
        "`kubectl tierguard <action>` and the Argo CD resource actions all work the same "
        "way.\n"
    )
    out.append("## Spec\n")
    _section("spec", schema["properties"]["spec"], out)
    out.append("## Status\n")
    out.append(
        "Written only by the operator (status subresource). It is the only place rollout "
        "state lives, so a restarted operator resumes from it.\n"
    )
    _section("status", schema["properties"]["status"], out)
    return "\n".join(out).rstrip() + "\n"
