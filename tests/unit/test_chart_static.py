"""The Helm chart's static contract, checked without helm: the CRD it ships is the
generated one, generated files are fresh, the alerts and dashboard use only metric names
and labels defined in tierguard.api.metrics, and the values are documented and typed.
Rendering with helm is in test_chart_render.py."""

from __future__ import annotations

import importlib.util
import json
import re
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from tierguard.api import metrics as m
from tierguard.api.crdgen import DEFAULT_OUT, render_crd_yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"


def gen() -> ModuleType:
    path = ROOT / "scripts" / "gen_packaging.py"
    spec = importlib.util.spec_from_file_location("gen_packaging", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_chart_crd_is_the_generated_crd() -> None:
    shipped = (CHART / "files" / "routingpolicies.tierguard.io.yaml").read_text()
    assert shipped == (ROOT / DEFAULT_OUT).read_text(), "run python scripts/gen_packaging.py"
    assert shipped == render_crd_yaml(), "run `tierguard gen-crds`, then scripts/gen_packaging.py"


def test_crd_is_not_also_in_crds_folder() -> None:
    """Helm would install crds/ first and the template's CRD would then conflict."""
    assert not (CHART / "crds").exists()


@pytest.mark.parametrize(
    "name", ["CRD_COPY", "DASHBOARD", "ARGOCD_CM", "CHART_README"], ids=str.lower
)
def test_generated_files_are_fresh(name: str) -> None:
    g = gen()
    path = getattr(g, name)
    assert path.read_text() == g.outputs()[path](), "run python scripts/gen_packaging.py"


def test_versions_agree() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert chart["appVersion"] == project["version"]
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["operator"]["image"]["tag"] == "", "the tag defaults to appVersion"


# --------------------------------------------------------------------------- metrics

_KNOWN = {d.name: d for d in m.ALL_METRICS}
#: Labels Prometheus adds to every scraped series (target labels) or that PromQL defines.
_TARGET_LABELS = {"namespace", "job", "instance", "pod", "service", "le"}


def _series_name(token: str) -> m.MetricDef | None:
    if token in _KNOWN:
        return _KNOWN[token]
    for suffix in ("_bucket", "_sum", "_count"):
        base = token.removesuffix(suffix)
        if base != token and base in _KNOWN and _KNOWN[base].type == "histogram":
            return _KNOWN[base]
    return None


def _check_expr(expr: str) -> None:
    names = set(re.findall(r"\btierguard_[a-z0-9_]+\b", expr))
    assert names, expr
    defs = []
    for name in names:
        d = _series_name(name)
        assert d is not None, f"{name} is not defined in tierguard.api.metrics"
        defs.append(d)
    allowed = _TARGET_LABELS | {label for d in defs for label in d.labels}
    used: set[str] = set()
    for group in re.findall(r"\b(?:by|without|ignoring|on)\s*\(([^)]*)\)", expr):
        used |= {x.strip() for x in group.split(",") if x.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        used |= set(re.findall(r"([a-z_]+)\s*(?:=~|!~|!=|=)\s*\"", selector))
    assert used <= allowed, f"labels {sorted(used - allowed)} unknown in: {expr}"


def _rule_exprs() -> list[str]:
    text = (CHART / "templates" / "prometheusrule.yaml").read_text()
    return [
        block for block in re.findall(r"expr: \|\n((?:\s{12}.*\n)+)", text) if "tierguard_" in block
    ]


def test_alert_expressions_use_defined_metrics_and_labels() -> None:
    exprs = _rule_exprs()
    assert len(exprs) >= 4
    for expr in exprs:
        _check_expr(expr)


def test_alerts_cover_the_issue() -> None:
    text = (CHART / "templates" / "prometheusrule.yaml").read_text()
    assert m.ROLLBACKS.name in text
    assert m.ROLLOUT_PHASE.name in text and 'phase="Paused"' in text
    assert m.PROMETHEUS_ERRORS.name in text
    assert f'{m.REQUESTS.name}{{outcome="{m.OUTCOME_ERROR}"}}' in text


def _dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads((CHART / "dashboards" / "tierguard.json").read_text())
    return dashboard


def test_dashboard_queries_use_defined_metrics_and_labels() -> None:
    dash = _dashboard()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [a["expr"] for a in dash["annotations"]["list"]]
    assert len(exprs) >= 15
    for expr in exprs:
        _check_expr(expr)


def test_dashboard_shows_what_sres_need() -> None:
    dash = _dashboard()
    exprs = "\n".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for d in (
        m.ROLLOUT_WEIGHT,
        m.CANARY_WEIGHT,
        m.FEEDBACK,
        m.SHADOW_JUDGEMENTS,
        m.COST,
        m.ESCALATIONS,
        m.CLASSIFIER_INFO,
    ):
        assert d.name in exprs, d.name
    assert f"{m.REQUEST_DURATION.name}_bucket" in exprs
    # Quality is per tier and arm: canary vs control side by side, never an aggregate.
    titles = {p["title"] for p in dash["panels"]}
    assert {"Thumbs-down rate", "Shadow disagreement rate"} <= titles
    for p in dash["panels"]:
        if p["title"] in {"Thumbs-down rate", "Shadow disagreement rate"}:
            assert "by (tier, arm)" in p["targets"][0]["expr"]
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    variables = {v["name"] for v in dash["templating"]["list"]}
    assert variables == {"datasource", "job", "instance", "namespace", "policy", "tier"}


def _targets(dash: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    return exprs + [a["expr"] for a in dash["annotations"]["list"]]


def test_dashboard_follows_dashboard_linter_conventions() -> None:
    """What grafana/dashboard-linter checks (it cannot run in CI, see docs/testbed.md):
    every selector filters on $job and $instance, rate windows are $__rate_interval, the
    job/instance variables are multi-select with allValue .+, panels carry a description
    and a unit, variables refresh on time-range change."""
    dash = _dashboard()
    for expr in _targets(dash):
        names = re.findall(r"\btierguard_[a-z0-9_]+\b", expr)
        selectors = re.findall(r"\btierguard_[a-z0-9_]+\{([^}]*)\}", expr)
        assert len(selectors) == len(names), f"a bare metric name in: {expr}"
        for sel in selectors:
            assert 'job=~"$job"' in sel and 'instance=~"$instance"' in sel, expr
        for func, window in re.findall(r"\b(i?rate)\([^\[]*\[([^\]]*)\]", expr):
            assert window == "$__rate_interval", f"{func} over [{window}] in: {expr}"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["label"] == "Data source"
    for name in ("job", "instance"):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] is True and v["allValue"] == ".+"
        assert v["label"] == name.title()
        assert v["datasource"]["uid"] == "${datasource}"
    for v in variables.values():
        if v["type"] == "query":
            assert v["refresh"] == 2, v["name"]
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["description"] and p["fieldConfig"]["defaults"]["unit"], p["title"]
            assert p["datasource"]["uid"] == "${datasource}", p["title"]


# --------------------------------------------------------------------------- values


def _leaves(node: object, path: str = "") -> set[str]:
    if isinstance(node, dict) and node:
        out: set[str] = set()
        for k, v in node.items():
            out |= _leaves(v, f"{path}.{k}" if path else k)
        return out
    return {path}


def test_every_value_is_documented() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = {key for key, _, _ in gen().values_rows(text)}
    for leaf in _leaves(yaml.safe_load(text)):
        parts = leaf.split(".")
        prefixes = {".".join(parts[: i + 1]) for i in range(len(parts))}
        assert prefixes & documented, f"{leaf} has no '# --' comment in values.yaml"


def test_schema_covers_every_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(node: dict[str, Any], sch: dict[str, Any], path: str) -> None:
        if sch.get("additionalProperties") is False:
            props = sch.get("properties", {})
            for key, value in node.items():
                assert key in props, f"{path}.{key} is missing from values.schema.json"
                if isinstance(value, dict) and props[key].get("type") == "object":
                    walk(value, props[key], f"{path}.{key}")

    walk(values, schema, "")


def test_chart_ships_the_argocd_lua() -> None:
    ignored = (CHART / ".helmignore").read_text()
    assert "argocd" not in ignored and "*.lua" not in ignored
    lua = CHART / "argocd" / "tierguard.io" / "RoutingPolicy"
    assert (lua / "health.lua").exists()
    assert len(list((lua / "actions").glob("*/action.lua"))) == 5


def test_dashboard_is_not_editable_in_the_ui() -> None:
    """Provisioned by the chart: UI edits would be overwritten on the next sync."""
    assert _dashboard()["editable"] is False
