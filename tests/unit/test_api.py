"""The API models: defaults, cross-field rules, durations, CRD generation."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tierguard.api import policy
from tierguard.api.crdgen import DEFAULT_OUT, build_crd, render_crd_yaml
from tierguard.api.durations import InvalidDurationError, format_duration, parse_duration
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.resource import RoutingPolicy

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "kubernetes" / "policies").glob("*.yaml"))


def base_spec() -> dict[str, Any]:
    return {
        "models": [
            {"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"},
            {"name": "small", "baseURL": "http://small/v1", "upstreamModel": "s"},
        ],
        "routes": [
            {"tier": "simple", "baseline": "big", "candidate": "small", "fallbacks": ["big"]},
            {"tier": "complex", "baseline": "big"},
        ],
        "analysis": {"slos": [{"tier": "simple", "signal": "ThumbsDown"}]},
    }


def test_committed_crd_is_fresh() -> None:
    committed = (ROOT / DEFAULT_OUT).read_text()
    assert committed == render_crd_yaml(), "crds/ is stale: run `tierguard gen-crds`"


def test_pairwise_judge_spec() -> None:
    spec = base_spec()
    spec["models"].append({"name": "judge", "baseURL": "http://j/v1", "upstreamModel": "j"})
    spec["router"] = {"shadow": {"judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"}}}
    judge = RoutingPolicySpec.model_validate(spec).router.shadow.judge
    assert (judge.mode, judge.max_order_inconsistency, judge.max_error_rate) == (
        "Pairwise",
        0.5,
        0.2,
    )
    # the default mode is the agree/disagree judge; a model serving only routes without a
    # candidate (complex's baseline) may judge
    spec["routes"][0]["candidate"] = None
    spec["analysis"]["slos"] = []
    spec["router"] = {"shadow": {"judge": {"type": "LLM", "model": "big"}}}
    assert RoutingPolicySpec.model_validate(spec).router.shadow.judge.mode == "Agreement"


def test_defaults_fill_in() -> None:
    spec = RoutingPolicySpec.model_validate(base_spec())
    assert spec.rollout.steps == [5, 10, 25, 50, 100]
    assert spec.rollout.holdback_percent == 5
    assert [t.name for t in spec.classifier.tiers] == ["simple", "complex"]
    assert spec.to_k8s()["rollout"]["minSamplesPerArm"] == 200


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda s: s["rollout"].update(steps=[10, 5, 100]), "strictly increasing"),
        (lambda s: s["rollout"].update(steps=[5, 50]), "last step must be 100"),
        (lambda s: s["rollout"].update(steps=[5, 150]), "within (0, 100]"),
        (lambda s: s["routes"][0].update(tier="medium"), "routes[0].tier"),
        (lambda s: s["routes"][0].update(candidate="ghost"), "routes[0].candidate"),
        (lambda s: s["routes"][0].update(fallbacks=["ghost"]), "fallbacks[0]"),
        (lambda s: s["analysis"]["slos"][0].update(tier="medium"), "slos[0].tier"),
        (lambda s: s["analysis"].update(slos=[]), "no SLO"),
        (lambda s: s["routes"].pop(), "tier 'complex' has no route"),
        (lambda s: s["rollout"].update(bakeTime="5 minutes"), "bakeTime"),
        (lambda s: s["rollout"].update(holdbackPercent=80), "holdbackPercent"),
        (lambda s: s["analysis"]["slos"][0].update(failMargin=0.9), "failMargin"),
        (
            lambda s: s.update(router={"shadow": {"judge": {"mode": "Pairwise"}}}),
            "mode Pairwise needs type LLM and a judge model",
        ),
        (
            lambda s: s.update(router={"shadow": {"judge": {"type": "LLM", "model": "big"}}}),
            "'big' is the baseline of routes[0] (tier 'simple')",
        ),
        (
            lambda s: s.update(
                router={"shadow": {"judge": {"type": "LLM", "model": "small", "mode": "Pairwise"}}}
            ),
            "'small' is the candidate of routes[0]",
        ),
    ],
)
def test_invalid_specs_name_the_field(
    mutate: Callable[[dict[str, Any]], object], needle: str
) -> None:
    spec = base_spec()
    spec.setdefault("rollout", {})
    mutate(spec)
    with pytest.raises(ValidationError) as err:
        RoutingPolicySpec.model_validate(spec)
    assert needle in str(err.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1500ms", 1.5), ("0.5s", 0.5)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "5", "m5", "5 m", "1d", "-5s"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(InvalidDurationError, match=r"e\.g\."):
        parse_duration(bad)


def test_format_duration_round_trips() -> None:
    for seconds in (1, 59, 60, 61, 3600, 5400, 86399):
        assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_examples_are_valid(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        RoutingPolicy.from_k8s(doc)


def test_crd_schema_is_structural() -> None:
    """Every schema node has a type (or preserves unknown fields): the API server's rule."""
    schema = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]

    def walk(node: dict[str, Any], path: str) -> None:
        assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
        assert "$ref" not in node and "anyOf" not in node and "title" not in node, path
        for name, sub in node.get("properties", {}).items():
            walk(sub, f"{path}.{name}")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "")
    spec = schema["properties"]["spec"]
    assert spec["properties"]["rollout"]["properties"]["steps"]["default"] == [5, 10, 25, 50, 100]
    assert spec["x-kubernetes-validations"], "cross-field CEL rules missing"
    assert yaml.safe_load(render_crd_yaml())["kind"] == "CustomResourceDefinition"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (lambda s: s["rollout"].update(interval="0s"), "at least 5s"),
        (lambda s: s["rollout"].update(interval="4s"), "at least 5s"),
        (lambda s: s["rollout"].update(bakeTime="0s"), "at least 5s"),
        (lambda s: s["rollout"].update(maxStepDuration="0s"), "at least 1m"),
        (lambda s: s["rollout"].update(noData={"after": "0s"}), "at least 10s"),
        (lambda s: s["rollout"].update(bakeTime="2h", maxStepDuration="1h"), "bakeTime"),
        (lambda s: s["rollout"].update(interval="5m", noData={"after": "1m"}), "interval"),
        (lambda s: s["models"][0].update(timeout="0s"), "at least 1s"),
        (lambda s: s["routes"][0].update(latencyBudget="0ms"), "at least 100ms"),
        (lambda s: s.update(prometheus={"timeout": "0s"}), "at least 1s"),
        (lambda s: s.update(router={"requestDeadline": "0s"}), "at least 1s"),
        (lambda s: s.update(router={"feedbackTtl": "1s"}), "at least 1m"),
        (lambda s: s["routes"][0].update(candidate="big"), "candidate must differ"),
        (lambda s: s["rollout"].update(interval="99999999999h"), "too long"),
    ],
)
def test_duration_floors_and_candidate_rule(
    mutate: Callable[[dict[str, Any]], object], needle: str
) -> None:
    spec = base_spec()
    spec.setdefault("rollout", {})
    mutate(spec)
    with pytest.raises(ValidationError) as err:
        RoutingPolicySpec.model_validate(spec)
    assert needle in str(err.value)


def _crd_rules(node: dict[str, Any], out: dict[str, list[str]], path: str = "spec") -> None:
    out[path] = [r["message"] for r in node.get("x-kubernetes-validations", [])]
    for name, sub in node.get("properties", {}).items():
        _crd_rules(sub, out, f"{path}.{name}")
    if "items" in node:
        _crd_rules(node["items"], out, f"{path}[]")


#: Every pydantic validator of the API models and the CEL rule(s) that refuse the same
#: input at apply time (the API server). A new validator without a twin fails here; the
#: counterexamples of each are applied to the real API server in
#: tests/integration/test_crd.py, which also checks pydantic refuses them.
CEL_TWINS: dict[str, tuple[str, list[str]]] = {
    "ClassifierSpec._unique_tiers": ("spec.classifier.tiers", ["tier names must be unique"]),
    "RouteSpec._candidate_differs": ("spec.routes[]", ["candidate must differ from baseline"]),
    "RolloutSpec._steps_valid": (
        "spec.rollout",
        [
            "maxStepDuration must be longer than bakeTime (no step could ever advance)",
            "noData.after must be at least interval (gates are read once per interval)",
        ],
    ),
    "SLOSpec._signal_needs": (
        "spec.analysis.slos[]",
        [
            "signal Custom needs query.bad and query.total",
            "signal Latency needs latencyObjective",
            "objective Absolute needs threshold",
        ],
    ),
    "PreFlightSpec._unique": (
        "spec.rollout.preflight",
        ["at most one sample rate per tier"],
    ),
    "SliceSpec._values": (
        "spec.analysis.slices[]",
        [
            "'other' is reserved: requests outside the declared values count as other",
            "slice values must be unique",
        ],
    ),
    "JudgeSpec._mode_needs": (
        "spec.router.shadow.judge",
        ["mode Pairwise needs type LLM and a judge model"],
    ),
    "RoutingPolicySpec._cross_field": (
        "spec",
        [str(r["message"]) for r in policy._SPEC_RULES],  # type: ignore[index,call-overload]
    ),
}


def test_every_pydantic_validator_has_a_cel_twin_in_the_crd() -> None:
    found = set()
    for name, cls in vars(policy).items():
        if not (isinstance(cls, type) and issubclass(cls, policy.ApiModel)):
            continue
        decorators = cls.__pydantic_decorators__
        for kind in ("model_validators", "field_validators"):
            for vname, dec in getattr(decorators, kind).items():
                if dec.cls_ref.split(":")[0].endswith(f".{name}"):
                    found.add(f"{name}.{vname}")
    assert found == set(CEL_TWINS), "a pydantic-only validator needs a CEL rule (and a twin entry)"
    rules: dict[str, list[str]] = {}
    spec = build_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    _crd_rules(spec, rules)
    for validator, (path, messages) in CEL_TWINS.items():
        for message in messages:
            assert message in rules.get(path, []), (validator, path, message)
    # Duration floors: one definition, both forms.
    interval = spec["properties"]["rollout"]["properties"]["interval"]
    assert interval["x-kubernetes-validations"] == [
        {"rule": "duration(self) >= duration('5s')", "message": "must be at least 5s"}
    ]
