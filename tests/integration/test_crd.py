"""The generated CRD against the real kube-apiserver: it installs, it defaults, it
refuses invalid policies with a message naming the field, and kubectl shows the columns.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from tierguard.api.constants import CRD_NAME
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.resource import RoutingPolicy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
CRD_FILE = ROOT / "crds" / f"{CRD_NAME}.yaml"
POLICY_EXAMPLES = sorted((ROOT / "examples" / "kubernetes" / "policies").glob("*.yaml"))


@pytest.fixture(scope="module")
def crd_installed(control_plane: Any) -> None:
    out = kubectl(control_plane, "apply", "--server-side", "-f", str(CRD_FILE))
    assert out.returncode == 0, out.stderr
    control_plane.wait_established(CRD_NAME)


def kubectl(control_plane: Any, *args: str, input: str | None = None) -> Any:
    """The real kubectl; the exit code is the test's to judge."""
    return control_plane.kubectl(*args, input=input, check=False)


def apply(control_plane: Any, namespace: str, doc: dict[str, Any]) -> Any:
    return kubectl(control_plane, "apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(doc))


def good_policy(name: str = "p") -> dict[str, Any]:
    return {
        "apiVersion": "tierguard.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {"name": name},
        "spec": {
            "models": [
                {"name": "big", "baseURL": "http://big.llm:8000/v1", "upstreamModel": "b"},
                {"name": "small", "baseURL": "http://small.llm:8000/v1", "upstreamModel": "s"},
            ],
            "routes": [
                {"tier": "simple", "baseline": "big", "candidate": "small", "fallbacks": ["big"]},
                {"tier": "complex", "baseline": "big"},
            ],
            "rollout": {"steps": [5, 10, 25, 50, 100]},
            "analysis": {"slos": [{"tier": "simple", "signal": "ThumbsDown"}]},
        },
    }


def test_crd_is_established(control_plane: Any, crd_installed: None) -> None:
    out = kubectl(control_plane, "get", "crd", CRD_NAME, "-o", "json")
    assert out.returncode == 0, out.stderr
    conditions = {c["type"]: c["status"] for c in json.loads(out.stdout)["status"]["conditions"]}
    assert conditions.get("Established") == "True"
    assert conditions.get("NamesAccepted") == "True"


@pytest.mark.parametrize("path", POLICY_EXAMPLES, ids=lambda p: p.name)
def test_examples_apply_and_read_back_equal(
    control_plane: Any, crd_installed: None, namespace: str, path: Path
) -> None:
    for doc in yaml.safe_load_all(path.read_text()):
        out = kubectl(control_plane, "apply", "-n", namespace, "-f", str(path))
        assert out.returncode == 0, out.stderr
        got = kubectl(
            control_plane,
            "get",
            "routingpolicy",
            doc["metadata"]["name"],
            "-n",
            namespace,
            "-o",
            "json",
        )
        assert got.returncode == 0, got.stderr
        stored = RoutingPolicy.from_k8s(json.loads(got.stdout))
        # The API server filled in the same defaults the models declare.
        assert stored.spec == RoutingPolicySpec.model_validate(doc["spec"])
        raw_spec = json.loads(got.stdout)["spec"]
        assert raw_spec["rollout"]["holdbackPercent"] == stored.spec.rollout.holdback_percent


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(spec: dict[str, Any]) -> None:
        node: Any = spec
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node.setdefault(k, {})
        last = keys[-1]
        if value is _DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value

    return mutate


_DELETE = object()

# (id, mutation of spec, text the API server's message must contain: the field)
INVALID: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("steps-wrong-type", _set("rollout.steps", ["five", 100]), "spec.rollout.steps[0]"),
    ("steps-not-increasing", _set("rollout.steps", [10, 5, 100]), "spec.rollout.steps"),
    ("step-over-100", _set("rollout.steps", [5, 150]), "spec.rollout.steps"),
    ("last-step-not-100", _set("rollout.steps", [5, 50]), "spec.rollout.steps"),
    ("unknown-tier", _set("routes.0.tier", "medium"), "spec.routes"),
    ("unknown-candidate", _set("routes.0.candidate", "ghost"), "spec.routes"),
    ("unknown-fallback", _set("routes.0.fallbacks", ["ghost"]), "spec.routes"),
    ("holdback-out-of-range", _set("rollout.holdbackPercent", 80), "spec.rollout.holdbackPercent"),
    ("bad-duration", _set("rollout.bakeTime", "5 minutes"), "spec.rollout.bakeTime"),
    ("missing-models", _set("models", _DELETE), "spec.models"),
    ("missing-routes", _set("routes", _DELETE), "spec.routes"),
    ("model-name-uppercase", _set("models.0.name", "Big"), "spec.models[0].name"),
    ("slo-unknown-tier", _set("analysis.slos.0.tier", "medium"), "spec.analysis.slos"),
    ("candidate-without-slo", _set("analysis.slos", []), "spec.analysis.slos"),
    ("confidence-too-high", _set("analysis.confidence", 1.5), "spec.analysis.confidence"),
    ("unknown-signal", _set("analysis.slos.0.signal", "Vibes"), "spec.analysis.slos[0].signal"),
    (
        "latency-without-objective",
        _set("analysis.slos.0.signal", "Latency"),
        "spec.analysis.slos[0].latencyObjective",
    ),
    ("base-url-not-http", _set("models.0.baseURL", "ftp://x"), "spec.models[0].baseURL"),
    ("negative-price", _set("models.0.pricing", {"inputPerMillionTokens": -1}), "pricing"),
    ("min-samples-zero", _set("rollout.minSamplesPerArm", 0), "spec.rollout.minSamplesPerArm"),
    # candidate == baseline: refused at apply time, not only by the operator
    ("candidate-is-baseline", _set("routes.0.candidate", "big"), "spec.routes[0].candidate"),
    (
        "duplicate-tiers",
        _set("classifier", {"tiers": [{"name": "simple"}, {"name": "simple"}]}),
        "spec.classifier.tiers",
    ),
    (
        "custom-without-query",
        _set("analysis.slos.0.signal", "Custom"),
        "spec.analysis.slos[0].query",
    ),
    (
        "absolute-without-threshold",
        _set("analysis.slos.0.objective", "Absolute"),
        "spec.analysis.slos[0].threshold",
    ),
    ("duplicate-models", _set("models.1.name", "big"), "spec.models"),
    (
        "judge-not-a-model",
        _set("router", {"shadow": {"judge": {"type": "LLM", "model": "ghost"}}}),
        "spec.router.shadow.judge.model",
    ),
    (
        "pairwise-judge-without-llm",
        _set("router", {"shadow": {"judge": {"mode": "Pairwise"}}}),
        "spec.router.shadow.judge.mode",
    ),
    (
        "judge-is-candidate",
        _set("router", {"shadow": {"judge": {"type": "LLM", "model": "small"}}}),
        "spec.router.shadow.judge.model",
    ),
    # duration floors (a zero interval made the operator spin)
    ("interval-zero", _set("rollout.interval", "0s"), "spec.rollout.interval"),
    ("interval-under-5s", _set("rollout.interval", "4900ms"), "spec.rollout.interval"),
    ("bake-zero", _set("rollout.bakeTime", "0s"), "spec.rollout.bakeTime"),
    ("max-step-zero", _set("rollout.maxStepDuration", "0s"), "spec.rollout.maxStepDuration"),
    ("max-step-under-bake", _set("rollout.maxStepDuration", "2m"), "spec.rollout.maxStepDuration"),
    ("no-data-after-zero", _set("rollout.noData", {"after": "0s"}), "spec.rollout.noData.after"),
    ("no-data-under-interval", _set("rollout.interval", "15m"), "spec.rollout.noData.after"),
    ("model-timeout-zero", _set("models.0.timeout", "0s"), "spec.models[0].timeout"),
    ("latency-budget-zero", _set("routes.0.latencyBudget", "0s"), "spec.routes[0].latencyBudget"),
    ("prometheus-timeout-zero", _set("prometheus", {"timeout": "0s"}), "spec.prometheus.timeout"),
    ("deadline-zero", _set("router", {"requestDeadline": "0s"}), "spec.router.requestDeadline"),
    ("feedback-ttl-short", _set("router", {"feedbackTtl": "30s"}), "spec.router.feedbackTtl"),
    ("interval-overflow", _set("rollout.interval", "99999999999h"), "spec.rollout.interval"),
    (
        "latency-objective-zero",
        _set("analysis.slos.0", {"tier": "simple", "signal": "Latency", "latencyObjective": "0s"}),
        "spec.analysis.slos[0].latencyObjective",
    ),
    (
        "no-text-tier-unknown",
        _set("classifier.noTextTier", "medium"),
        "spec.classifier.noTextTier",
    ),
    (
        "max-response-bytes-too-small",
        _set("router.maxResponseBytes", 1024),
        "spec.router.maxResponseBytes",
    ),
    (
        "slice-value-other-is-reserved",
        _set("analysis.slices", [{"name": "category", "key": "category", "values": ["other"]}]),
        "spec.analysis.slices[0].values",
    ),
    (
        "slice-values-duplicate",
        _set("analysis.slices", [{"name": "category", "key": "c", "values": ["a", "a"]}]),
        "spec.analysis.slices[0].values",
    ),
    (
        "slice-too-many-values",
        _set(
            "analysis.slices",
            [{"name": "category", "key": "c", "values": [f"v{i}" for i in range(21)]}],
        ),
        "spec.analysis.slices[0].values",
    ),
    (
        "slice-names-duplicate",
        _set("analysis.slices", [{"name": "c", "key": "c", "values": ["a"]}] * 2),
        "spec.analysis.slices",
    ),
    (
        "slice-gates-too-many",
        _set(
            "analysis.slices",
            [
                {"name": f"s{j}", "key": "c", "values": [f"v{i}" for i in range(20)]}
                for j in range(4)
            ],
        ),
        "spec.analysis.slices",
    ),
    (
        "slice-source-unknown",
        _set(
            "analysis.slices",
            [{"name": "c", "key": "c", "source": "Body", "values": ["a"]}],
        ),
        "spec.analysis.slices[0].source",
    ),
    (
        "judge-prompt-without-pairwise",
        _set("router", {"shadow": {"judge": {"promptConfigMapRef": {"name": "prompt"}}}}),
        "spec.router.shadow.judge.promptConfigMapRef",
    ),
    (
        "slice-key-missing",
        _set("analysis.slices", [{"name": "c", "source": "Header", "values": ["a"]}]),
        "spec.analysis.slices[0].key",
    ),
    (
        "slice-classifier-key-other-than-category",
        _set(
            "analysis.slices",
            [{"name": "c", "key": "c", "source": "Classifier", "values": ["a"]}],
        ),
        "spec.analysis.slices[0].key",
    ),
    (
        "fail-margin-beyond-allowed-drop",
        _set("analysis.slos.0.failMargin", 0.9),
        "spec.analysis.slos[0].failMargin",
    ),
]


@pytest.mark.parametrize(("mutate", "field"), [i[1:] for i in INVALID], ids=[i[0] for i in INVALID])
def test_invalid_policies_are_refused_naming_the_field(
    control_plane: Any,
    crd_installed: None,
    namespace: str,
    mutate: Callable[[dict[str, Any]], None],
    field: str,
) -> None:
    doc = good_policy("bad")
    mutate(doc["spec"])
    out = apply(control_plane, namespace, doc)
    assert out.returncode != 0, f"the API server accepted an invalid policy: {doc['spec']}"
    assert field in out.stderr, out.stderr
    # The twin: the models refuse the same input when it reaches the operator another way.
    with pytest.raises(ValidationError):
        RoutingPolicySpec.model_validate(doc["spec"])
    # Nothing was stored.
    got = kubectl(control_plane, "get", "routingpolicy", "bad", "-n", namespace)
    assert got.returncode != 0


def test_the_good_policy_is_accepted(
    control_plane: Any, crd_installed: None, namespace: str
) -> None:
    out = apply(control_plane, namespace, good_policy())
    assert out.returncode == 0, out.stderr


def test_a_classifier_slice_without_key_is_accepted(
    control_plane: Any, crd_installed: None, namespace: str
) -> None:
    doc = good_policy("clfslice")
    doc["spec"].setdefault("analysis", {})["slices"] = [
        {"name": "topic", "source": "Classifier", "values": ["billing_status"]},
        {"name": "topic2", "source": "Classifier", "key": "category", "values": ["refunds"]},
    ]
    out = apply(control_plane, namespace, doc)
    assert out.returncode == 0, out.stderr
    RoutingPolicySpec.model_validate(doc["spec"])


def test_a_pairwise_judge_of_its_own_model_is_accepted(
    control_plane: Any, crd_installed: None, namespace: str
) -> None:
    doc = good_policy("pairwise")
    doc["spec"]["models"].append(
        {"name": "judge", "baseURL": "http://judge.llm:8000/v1", "upstreamModel": "j"}
    )
    doc["spec"]["router"] = {
        "shadow": {
            "judge": {
                "type": "LLM",
                "model": "judge",
                "mode": "Pairwise",
                "promptConfigMapRef": {"name": "judge-prompt"},
            }
        }
    }
    out = apply(control_plane, namespace, doc)
    assert out.returncode == 0, out.stderr
    got = kubectl(control_plane, "get", "routingpolicy", "pairwise", "-n", namespace, "-o", "json")
    judge = json.loads(got.stdout)["spec"]["router"]["shadow"]["judge"]
    assert judge["mode"] == "Pairwise" and judge["maxOrderInconsistency"] == 0.5
    assert judge["promptConfigMapRef"] == {"name": "judge-prompt", "key": "prompt"}


def test_durations_at_their_floors_are_accepted(
    control_plane: Any, crd_installed: None, namespace: str
) -> None:
    doc = good_policy("floors")
    doc["spec"]["rollout"].update(
        interval="5s", bakeTime="5s", maxStepDuration="1m", noData={"after": "10s"}
    )
    doc["spec"]["models"][0]["timeout"] = "1s"
    doc["spec"]["routes"][0]["latencyBudget"] = "100ms"
    doc["spec"]["prometheus"] = {"timeout": "1s"}
    doc["spec"]["router"] = {"requestDeadline": "1s", "feedbackTtl": "1m"}
    out = apply(control_plane, namespace, doc)
    assert out.returncode == 0, out.stderr
    RoutingPolicySpec.model_validate(doc["spec"])


def test_printer_columns(control_plane: Any, crd_installed: None, namespace: str) -> None:
    doc = copy.deepcopy(good_policy("cols"))
    assert apply(control_plane, namespace, doc).returncode == 0
    status = {
        "status": {
            "phase": "Progressing",
            "stepDisplay": "2/5",
            "canaryWeight": 10,
            "verdictSummary": "simple=Inconclusive",
        }
    }
    patched = kubectl(control_plane,
        "patch", "routingpolicy", "cols", "-n", namespace, "--subresource=status",
        "--type=merge", "-p", json.dumps(status),
    )  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    out = kubectl(control_plane, "get", "routingpolicies", "-n", namespace)
    assert out.returncode == 0, out.stderr
    header, row = out.stdout.splitlines()[:2]
    assert header.split() == ["NAME", "PHASE", "STEP", "WEIGHT", "VERDICTS", "AGE"]
    assert row.split()[:5] == ["cols", "Progressing", "2/5", "10", "simple=Inconclusive"]
    short = kubectl(control_plane, "get", "rpol", "-n", namespace)
    assert short.returncode == 0 and "cols" in short.stdout


def test_the_lab_pre_flight_policy_is_accepted(
    control_plane: Any, crd_installed: None, namespace: str
) -> None:
    """The lab's preflight-trap policy (pre-flight on, a pairwise judge) passes the API
    server's own validation, not only the models' (the lab e2e applies it for real)."""
    from tierguard.lab import lab_policy as lp
    from tierguard.lab import scenarios as sc

    doc = lp.lab_policy(
        sc.get("preflight-trap"),
        cheap_url="http://127.0.0.1:1/v1",
        capable_url="http://127.0.0.1:2/v1",
        judge_url="http://127.0.0.1:4/v1",
        prometheus_url="http://127.0.0.1:3",
        name="lab-preflight",
        namespace=namespace,
    )
    out = apply(control_plane, namespace, doc)
    assert out.returncode == 0, out.stderr
    got = kubectl(
        control_plane, "get", "routingpolicy", "lab-preflight", "-n", namespace, "-o", "json"
    )
    preflight = json.loads(got.stdout)["spec"]["rollout"]["preflight"]
    assert preflight["enabled"] is True and preflight["sampleRate"] == 1.0
