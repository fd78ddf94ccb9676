"""Extra labels/annotations on everything the operator renders (--rendered-label)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import cli, render, rendermeta
from tierguard.operator.rendermeta import (
    InvalidMetadataError,
    RenderedMetadata,
    parse_pairs,
    with_metadata,
)

ROOT = Path(__file__).resolve().parents[3]
SPEC = RoutingPolicySpec.model_validate(
    yaml.safe_load((ROOT / "examples" / "kubernetes" / "policies" / "minimal.yaml").read_text())[
        "spec"
    ]
)
REF = rendermeta.PolicyRef("shop", "team-a", "uid-1")


def test_every_rendered_object_carries_the_extras_and_keeps_its_own_labels() -> None:
    extra = RenderedMetadata({"release": "kube-prometheus-stack"}, {"example.com/team": "llm"})
    objs = render.render_all(REF, SPEC, RoutingPolicyStatus(), service_monitor_available=True)
    objs.append(render.signing_secret(REF))
    out = [with_metadata(o, extra) for o in objs]
    assert {o["kind"] for o in out} >= {"Deployment", "Service", "ServiceMonitor", "Secret"}
    for before, after in zip(objs, out, strict=True):
        assert after["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert after["metadata"]["annotations"]["example.com/team"] == "llm"
        assert before["metadata"]["labels"].items() <= after["metadata"]["labels"].items()
        assert "release" not in before["metadata"]["labels"], "the input is not modified"
        assert after["spec" if "spec" in after else "metadata"] is not None


def test_no_extras_is_the_object_unchanged() -> None:
    obj = render.service(REF, SPEC)
    assert with_metadata(obj, RenderedMetadata()) is obj


def test_pairs_are_parsed_and_checked() -> None:
    assert parse_pairs(["release=kps", "example.com/team=a"], "label") == {
        "release": "kps",
        "example.com/team": "a",
    }
    assert parse_pairs(["note=any text: even spaces"], "annotation") == {
        "note": "any text: even spaces"
    }
    for bad, needle in [
        ("release", "KEY=VALUE"),
        ("-bad=x", "not a valid Kubernetes key"),
        ("release=has space", "label value"),
        ("app.kubernetes.io/instance=x", "set by the operator itself"),
        (f"k={'v' * 64}", "label value"),
    ]:
        with pytest.raises(InvalidMetadataError, match=needle):
            parse_pairs([bad], "label")


def test_cli_flags_reach_the_settings() -> None:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    args = parser.parse_args(
        ["--rendered-label", "release=kps", "--rendered-label", "team=a",
         "--rendered-annotation", "example.com/owner=llm"]
    )  # fmt: skip
    meta = cli.rendered_metadata(args)
    assert meta.labels == {"release": "kps", "team": "a"}
    assert meta.annotations == {"example.com/owner": "llm"}
    with pytest.raises(InvalidMetadataError):
        cli.rendered_metadata(parser.parse_args(["--rendered-label", "bad"]))
