"""The chart's alert rules under the real promtool: `promtool check rules` on the
rendered PrometheusRule and `promtool test rules` with the unit tests shipped in the
chart (charts/tierguard/promtool/alerts_test.yaml), including counters born mid-window
and an operator restart; and the values combinations that cannot work are refused at
render time with a message."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from toolbox import helm, promtool

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"
SHIPPED_TESTS = CHART / "promtool"
ENABLE = ["--set", "metrics.prometheusRule.enabled=true"]
WITH_SM = [*ENABLE, "--set", "metrics.serviceMonitor.enabled=true"]


@pytest.fixture(scope="module", autouse=True)
def _helm_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    home = tmp_path_factory.mktemp("helm-home")
    for var in ("HELM_CONFIG_HOME", "HELM_CACHE_HOME", "HELM_DATA_HOME"):
        os.environ[var] = str(home / var.lower())


def render(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm(), "template", "tierguard", str(CHART), "--namespace", "monitoring", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def rule_groups(*args: str) -> dict[str, Any]:
    proc = render(*args)
    assert proc.returncode == 0, proc.stderr
    (rule,) = [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "PrometheusRule"]
    return {"groups": rule["spec"]["groups"]}


def test_shipped_promtool_tests_pass_on_the_rendered_rules(tmp_path: Path) -> None:
    for f in SHIPPED_TESTS.glob("*_test.yaml"):
        shutil.copy(f, tmp_path / f.name)
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rule_groups(*WITH_SM), sort_keys=False))
    check = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"], capture_output=True, text=True, cwd=tmp_path
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    tests = sorted(p.name for p in tmp_path.glob("*_test.yaml"))
    assert tests == ["alerts_test.yaml"]
    proc = subprocess.run(
        [promtool(), "test", "rules", *tests], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout


def test_shipped_tests_cover_a_counter_born_mid_window_and_every_alert() -> None:
    doc = yaml.safe_load((SHIPPED_TESTS / "alerts_test.yaml").read_text())
    alerts = {a["alertname"] for t in doc["tests"] for a in t.get("alert_rule_test", [])}
    groups = rule_groups(*WITH_SM)["groups"]
    rules = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert alerts == rules
    tested = "\n".join(e["expr"] for t in doc["tests"] for e in t.get("promql_expr_test", []))
    recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    assert recorded == {"tierguard:cost_per_satisfied_request:ratio_rate5m"}
    assert all(name in tested for name in recorded), "a recording rule has no promql_expr_test"
    for name in recorded:  # Prometheus' level:metric:operations naming
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", name), name
    born_at_one = [
        s["values"]
        for t in doc["tests"]
        for s in t["input_series"]
        if s["series"].startswith("tierguard_operator_rollbacks_total")
        and s["values"].startswith("_")
        and s["values"].split()[-1].startswith("1")
    ]
    assert born_at_one, "no test has a rollback counter that is born at 1"


def test_operator_down_without_a_scrape_is_refused_at_render_time() -> None:
    """absent(up{job=...}) with nothing scraping that job would be critical forever."""
    proc = render(*ENABLE)
    assert proc.returncode != 0
    assert "nothing scrapes the operator" in proc.stderr
    assert "metrics.serviceMonitor" in proc.stderr
    assert "operatorDown.job" in proc.stderr


def test_operator_down_follows_a_custom_scrape_job() -> None:
    groups = rule_groups(
        *ENABLE, "--set", "metrics.prometheusRule.operatorDown.job=kubernetes-pods"
    )
    (down,) = [
        r for g in groups["groups"] for r in g["rules"] if r.get("alert") == "TierguardOperatorDown"
    ]
    assert 'up{job="kubernetes-pods", namespace="monitoring"}' in down["expr"]
    assert "tierguard-operator" not in down["expr"]


def test_operator_down_can_be_left_out_without_a_service_monitor() -> None:
    groups = rule_groups(*ENABLE, "--set", "metrics.prometheusRule.operatorDown.enabled=false")
    alerts = {r["alert"] for g in groups["groups"] for r in g["rules"] if "alert" in r}
    assert "TierguardOperatorDown" not in alerts
    assert "TierguardRolloutRolledBack" in alerts


def test_operator_down_uses_the_service_monitor_job() -> None:
    """The Prometheus Operator names a ServiceMonitor's job after the Service."""
    proc = render(*WITH_SM)
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    (svc,) = [d for d in docs if d["kind"] == "Service"]
    (sm,) = [d for d in docs if d["kind"] == "ServiceMonitor"]
    assert "jobLabel" not in sm["spec"]
    rules = [
        r
        for d in docs
        if d["kind"] == "PrometheusRule"
        for g in d["spec"]["groups"]
        for r in g["rules"]
    ]
    (down,) = [r for r in rules if r.get("alert") == "TierguardOperatorDown"]
    assert f'up{{job="{svc["metadata"]["name"]}"' in down["expr"]
