"""kube-score on everything a user deploys, with the committed, reasoned exclusions in
lint/kube-score.yaml (see its header)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tierguard.api.resource import RoutingPolicy
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import render, rendermeta
from toolbox import go_tool, helm

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "tierguard"
EXCLUSIONS = yaml.safe_load((ROOT / "lint" / "kube-score.yaml").read_text())["exclusions"]
#: How a finding names each check in kube-score's CI output.
FINDING = {
    "container-cpu-limit": r"CPU limit is not set",
    "container-image-pull-policy": r"ImagePullPolicy is not set to Always",
    "pod-networkpolicy": r"does not have a matching NetworkPolicy",
}


def renders() -> dict[str, list[dict[str, Any]]]:
    def chart(*args: str) -> list[dict[str, Any]]:
        proc = subprocess.run(
            [helm(), "template", "tierguard", str(CHART), "-n", "tierguard-system",
             "--kube-version", "1.36.3", *args],
            capture_output=True, text=True, check=False,
            env={**os.environ, "HELM_CONFIG_HOME": "/tmp/tierguard-helm-config"},
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    routers: list[dict[str, Any]] = []
    for path in sorted((ROOT / "examples" / "kubernetes" / "policies").glob("*.yaml")):
        body = yaml.safe_load(path.read_text())
        body["metadata"] |= {"namespace": "llm", "uid": "00000000-0000-0000-0000-000000000003"}
        policy = RoutingPolicy.from_k8s(body)
        ref = rendermeta.PolicyRef(policy.metadata.name, "llm", body["metadata"]["uid"])
        routers += render.render_all(
            ref, policy.spec, RoutingPolicyStatus(), service_monitor_available=True
        )
    return {
        "default": chart(),
        "full": chart("--values", str(CHART / "ci" / "full-values.yaml")),
        "routers": routers,
    }


def kube_score(docs: list[dict[str, Any]], tmp: Path, *flags: str) -> tuple[int, str]:
    path = tmp / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    proc = subprocess.run(
        [go_tool("kube-score"), "score", str(path), "--output-format", "ci",
         "--exit-one-on-warning", *flags],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    findings = "\n".join(
        ln for ln in proc.stdout.splitlines() if ln.startswith(("[CRITICAL]", "[WARNING]"))
    )
    return proc.returncode, findings


def flags_for(render_set: str) -> list[str]:
    out: list[str] = []
    for ex in EXCLUSIONS:
        if render_set not in ex["renders"]:
            continue
        if ex["check"] == "container-cpu-limit":
            out.append("--ignore-container-cpu-limit")
        else:
            out += ["--ignore-test", ex["check"]]
    return out


def test_every_exclusion_has_a_reason() -> None:
    for ex in EXCLUSIONS:
        assert len(ex["reason"].split()) >= 15, ex["check"]
        assert ex["check"] in FINDING and set(ex["renders"]) <= {"default", "full", "routers"}


@pytest.mark.parametrize("render_set", ["default", "full", "routers"])
def test_kube_score_finds_nothing_beyond_the_exclusions(render_set: str, tmp_path: Path) -> None:
    docs = renders()[render_set]
    rc, findings = kube_score(docs, tmp_path, *flags_for(render_set))
    assert rc == 0 and not findings, findings
    # Each exclusion still matches a real finding here (else it is stale: remove it).
    rc, raw = kube_score(docs, tmp_path)
    for ex in EXCLUSIONS:
        if render_set in ex["renders"]:
            assert re.search(FINDING[ex["check"]], raw), f"stale exclusion {ex['check']}"
    assert rc != 0 or not [ex for ex in EXCLUSIONS if render_set in ex["renders"]]


def test_kube_score_really_scores(tmp_path: Path) -> None:
    """Guard against a scorer that passes everything: identical probes are flagged."""
    dep = next(d for d in renders()["default"] if d["kind"] == "Deployment")
    container = dep["spec"]["template"]["spec"]["containers"][0]
    container["readinessProbe"] = container["livenessProbe"]
    rc, findings = kube_score([dep], tmp_path, *flags_for("default"))
    assert rc != 0 and "same readiness and liveness probe" in findings
