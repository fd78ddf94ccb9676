"""Shared helpers for the router's tests: a tiny contract-conforming ONNX classifier and
router configs. (The bundled default model lives on the classifier branch; these tests do
not depend on it.)

The tiny model is word TF-IDF + logistic regression trained on a handful of phrases, so
its decisions are obvious: queries about orders, passwords or opening hours are
``simple``; long analytical requests (proof, legal, analysis, architecture) are
``complex``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIMPLE = [
    "where is my order", "reset my password", "what are your opening hours",
    "track my parcel", "change my email address", "cancel my order", "update my address",
    "how do I log in", "order status please", "password reset link",
]
COMPLEX = [
    "write a detailed legal analysis of the contract clauses",
    "prove the theorem and explain each step of the proof",
    "design a distributed architecture for payments with analysis of trade-offs",
    "compare the legal implications across jurisdictions in detail",
    "analyse the statistical methodology and critique the proof",
    "explain the architecture trade-offs and write the legal analysis",
    "detailed analysis of the algorithm complexity and proof of correctness",
    "legal analysis proof architecture detailed critique",
]
SIMPLE_QUERY = "where is my order"
COMPLEX_QUERY = "write a detailed legal analysis and proof of the architecture"


def build_tiny_classifier(path: Path, threshold: float = 0.5) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = SIMPLE + COMPLEX
    labels = [0] * len(SIMPLE) + [1] * len(COMPLEX)
    # lowercase=False: lower-casing needs ONNX StringNormalizer, which wants an installed
    # en_US locale this machine may lack
    pipe = Pipeline(
        [("tfidf", TfidfVectorizer(lowercase=False)), ("lr", LogisticRegression(C=20.0))]
    )
    pipe.fit(texts, labels)
    onx = convert_sklearn(
        pipe,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    for out in onx.graph.output:
        if out.name == "probabilities":
            break
    else:
        raise AssertionError([o.name for o in onx.graph.output])
    meta = {
        "tierguard.contract": "1",
        "tierguard.tiers": json.dumps(["simple", "complex"]),
        "tierguard.thresholds": json.dumps({"simple": threshold}),
        "tierguard.version": "tiny-test",
        "tierguard.training_data_sha256": "0" * 64,
        "tierguard.metrics": "{}",
    }
    for k, v in meta.items():
        p = onx.metadata_props.add()
        p.key, p.value = k, v
    path.write_bytes(onx.SerializeToString())
    return path


def router_config(
    classifier_path: Path | str,
    *,
    big_url: str = "http://127.0.0.1:1/v1",
    small_url: str = "http://127.0.0.1:1/v1",
    weight: float = 0.0,
    control_arm: str = "control",
    **overrides: Any,
) -> dict[str, Any]:
    """A two-tier config: simple → big (baseline) / small (candidate), complex → big."""
    cfg: dict[str, Any] = {
        "policy": "support",
        "salt": "test-salt",
        "revision": "r1",
        "classifier": {"path": str(classifier_path),
                       "tiers": [{"name": "simple"}, {"name": "complex"}]},
        "models": [
            {"name": "big", "baseURL": big_url, "upstreamModel": "big-1",
             "pricing": {"inputPerMillionTokens": 10, "outputPerMillionTokens": 30},
             "timeout": "5s", "systemPrompt": "You are Acme's assistant ({model}, {tier})."},
            {"name": "small", "baseURL": small_url, "upstreamModel": "small-1",
             "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2},
             "timeout": "5s", "systemPrompt": "You are Acme's assistant ({model}, {tier})."},
        ],
        "routes": [
            {"tier": "simple", "baseline": "big", "candidate": "small", "fallbacks": ["big"],
             "latencyBudget": "2s"},
            {"tier": "complex", "baseline": "big", "latencyBudget": "2s"},
        ],
        "split": [{"tier": "simple", "weight": weight, "controlArm": control_arm}],
        "observability": {"decisionLog": None},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


# --------------------------------------------------------------------------- fixtures
# (imported by the router's test modules; kept here rather than in a conftest.py that
# other parts of the project also write)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("classifier") / "tiny.onnx")
