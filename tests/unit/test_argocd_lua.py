"""The Argo CD health check and resource actions for RoutingPolicy, run under Argo CD's
own Lua runtime: gopher-lua set up the way Argo CD's util/lua sets it up for
customizations from argocd-cm (no standard libraries; package, base and table opened;
the safe ``os`` (time, date) only through ``require("os")``; results encoded with
gopher-json). The harness is tools/argocd-lua, built from the Go module proxy by
scripts/build-go-tool.sh (cached; scripts/setup.sh builds it).

The cases are Argo CD's upstream test files next to the scripts
(charts/tierguard/argocd/tierguard.io/RoutingPolicy/health_test.yaml and
actions/action_test.yaml, objects under testdata/ generated from the status models), so
the customization could be contributed to Argo CD's resource_customizations as is.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tierguard.api import constants as c
from tierguard.api.enums import Action, Phase
from tierguard.api.status import RoutingPolicyStatus

ROOT = Path(__file__).resolve().parents[2]
CUSTOMIZATIONS = ROOT / "charts" / "tierguard" / "argocd"
LUA_DIR = CUSTOMIZATIONS / c.GROUP / c.KIND


def _gen_module(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def argocd_lua() -> str:
    proc = subprocess.run(
        [str(ROOT / "scripts" / "build-go-tool.sh"), "argocd-lua"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, (
        "tools/argocd-lua could not be built (it needs the Go toolchain and the Go module "
        f"proxy; scripts/setup.sh builds it):\n{proc.stderr[-4000:]}"
    )
    return proc.stdout.strip().splitlines()[-1]


def _now() -> str:
    testdata = _gen_module("argocd_testdata", ROOT / "scripts" / "argocd_testdata.py")
    return str(testdata.NOW)


def run_tests(argocd_lua: str, root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [argocd_lua, "test", str(root)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "ARGOCD_LUA_NOW": _now()},
        timeout=120,
    )


def test_customization_passes_argo_cd_style_tests_under_gopher_lua(argocd_lua: str) -> None:
    proc = run_tests(argocd_lua, CUSTOMIZATIONS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    health = yaml.safe_load((LUA_DIR / "health_test.yaml").read_text())["tests"]
    actions = yaml.safe_load((LUA_DIR / "actions" / "action_test.yaml").read_text())
    n = len(health) + len(actions["discoveryTests"]) + len(actions["actionTests"])
    assert f"{n} passed, 0 failed" in proc.stdout


def test_every_action_is_tested_under_argo_cd_runtime() -> None:
    actions = yaml.safe_load((LUA_DIR / "actions" / "action_test.yaml").read_text())
    assert {t["action"] for t in actions["actionTests"]} == {a.value for a in Action}
    scripts = {p.parent.name for p in (LUA_DIR / "actions").glob("*/action.lua")}
    assert scripts == {a.value for a in Action}


def test_every_phase_has_a_health_case_and_a_discovery_case() -> None:
    """A new Phase fails here until someone decides its health and its actions."""
    health = yaml.safe_load((LUA_DIR / "health_test.yaml").read_text())["tests"]
    phases = set()
    for case in health:
        status = yaml.safe_load((LUA_DIR / case["inputPath"]).read_text()).get("status") or {}
        phases.add(status.get("phase"))
        assert case["healthStatus"]["status"] != "Unknown", case
    assert {p.value for p in Phase} <= phases
    discovery = yaml.safe_load((LUA_DIR / "actions" / "action_test.yaml").read_text())
    inputs = {t["inputPath"] for t in discovery["discoveryTests"]}
    assert {f"testdata/phase-{p.value.lower()}.yaml" for p in Phase} <= inputs


def test_testdata_statuses_are_valid_status_objects() -> None:
    """The objects the Lua is tested on are what the operator writes (a renamed status
    field would otherwise leave the tests green and the Argo CD UI wrong)."""
    known = {p.value for p in Phase}
    for path in LUA_DIR.rglob("testdata/*.yaml"):
        obj = yaml.safe_load(path.read_text())
        status = obj.get("status")
        if not status or status.get("phase") not in known:
            continue
        assert RoutingPolicyStatus.model_validate(status).to_k8s() == status, path


def test_harness_rejects_a_global_os_as_argo_cd_does(argocd_lua: str, tmp_path: Path) -> None:
    """The bug users hit: an action reaching ``os`` as a global fails in Argo CD with
    "attempt to index a non-table object(nil) with key 'time'". The harness must fail the
    same way, or it would not have caught it."""
    copy = tmp_path / "c"
    shutil.copytree(CUSTOMIZATIONS, copy)
    action = copy / c.GROUP / c.KIND / "actions" / "abort" / "action.lua"
    action.write_text(action.read_text().replace('local os = require("os")', ""))
    proc = run_tests(argocd_lua, copy)
    assert proc.returncode != 0
    assert "attempt to index a non-table object(nil) with key 'time'" in proc.stdout
    assert "FAIL" in proc.stdout and "abort" in proc.stdout


def test_harness_has_no_string_library(argocd_lua: str, tmp_path: Path) -> None:
    """Argo CD does not open the string library for argocd-cm scripts (useOpenLibs)."""
    script = tmp_path / "health.lua"
    script.write_text('return {status = string.upper("healthy")}\n')
    obj = tmp_path / "obj.yaml"
    obj.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "ConfigMap"}))
    proc = subprocess.run(
        [argocd_lua, "health", str(script), str(obj)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "string" in proc.stderr


# --------------------------------------------------------------------------- argocd-cm


def test_committed_generated_files_are_fresh() -> None:
    gen = _gen_module("gen_packaging", ROOT / "scripts" / "gen_packaging.py")
    for path, render in gen.outputs().items():
        if path == gen.ARGOCD_CM or LUA_DIR in path.parents:
            assert path.read_text() == render(), f"{path}: run `python scripts/gen_packaging.py`"


def test_argocd_cm_snippet_carries_the_tested_scripts() -> None:
    """The snippet users paste is exactly what the tests above ran."""
    cm = yaml.safe_load(
        (ROOT / "examples" / "kubernetes" / "argocd" / "argocd-cm.yaml").read_text()
    )
    data = cm["data"]
    key = f"{c.GROUP}_{c.KIND}"
    assert data[f"resource.customizations.health.{key}"] == (LUA_DIR / "health.lua").read_text()
    actions = yaml.safe_load(data[f"resource.customizations.actions.{key}"])
    assert actions["discovery.lua"] == (LUA_DIR / "actions" / "discovery.lua").read_text()
    names = [d["name"] for d in actions["definitions"]]
    assert names == [a.value for a in Action]
    for d in actions["definitions"]:
        assert d["action.lua"] == (LUA_DIR / "actions" / d["name"] / "action.lua").read_text()
    assert "useOpenLibs" not in str(actions), "the tests run without open libraries"
