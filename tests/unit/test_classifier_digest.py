"""The classifier content digest (api/classifierdigest.py): what it covers and what it
leaves out, and that the operator's and the router's view of one classifier agree."""

from __future__ import annotations

import base64

import pytest

from tierguard.api.classifierdigest import (
    ModelKeyError,
    classifier_digest,
    configmap_model,
    model_sha256,
)
from tierguard.api.policy import ClassifierSpec, RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import render_routerconfig, rendermeta

MODEL = b"\x08\x07onnx-bytes\x00\xff"


def spec(**classifier: object) -> ClassifierSpec:
    doc = {"tiers": [{"name": "simple", "threshold": 0.5}, {"name": "complex"}], **classifier}
    return ClassifierSpec.model_validate(doc)


BASE = classifier_digest(model_sha256(MODEL), spec())


def test_digest_is_stable_short_hex() -> None:
    assert classifier_digest(model_sha256(MODEL), spec()) == BASE
    assert len(BASE) == 16 and int(BASE, 16) >= 0


@pytest.mark.parametrize(
    "change",
    [
        {"tiers": [{"name": "simple", "threshold": 0.6}, {"name": "complex"}]},
        {"tiers": [{"name": "simple"}, {"name": "complex"}]},
        {"input": "AllUserMessages"},
        {"maxInputChars": 2000},
        {"tiering": "Request"},
        {"sessionMessages": 3},
        {"noTextTier": "simple"},
    ],
)
def test_every_tier_deciding_setting_changes_the_digest(change: dict[str, object]) -> None:
    assert classifier_digest(model_sha256(MODEL), spec(**change)) != BASE


def test_model_bytes_change_the_digest_the_reference_and_cache_do_not() -> None:
    assert classifier_digest(model_sha256(MODEL + b"\x00"), spec()) != BASE
    assert classifier_digest(model_sha256(MODEL), spec(cacheSize=5)) == BASE
    other_ref = spec(source={"configMapRef": {"name": "elsewhere", "key": "m2.onnx"}})
    assert classifier_digest(model_sha256(MODEL), other_ref) == BASE


def test_configmap_model_reads_binary_and_text_data_as_mounted_bytes() -> None:
    b64 = base64.b64encode(MODEL).decode()
    assert configmap_model({"binaryData": {"model.onnx": b64}}, "model.onnx") == (
        "binaryData",
        b64,
        MODEL,
    )
    assert configmap_model({"data": {"m": "héllo"}}, "m") == ("data", "héllo", "héllo".encode())
    with pytest.raises(ModelKeyError, match=r"no key 'model\.onnx'.*other"):
        configmap_model({"data": {"other": "x"}}, "model.onnx")
    with pytest.raises(ModelKeyError, match="not valid base64"):
        configmap_model({"binaryData": {"m": "***"}}, "m")


def test_router_config_settings_give_the_operators_digest() -> None:
    """The router hashes its rendered ClassifierConfig; the operator the policy's
    ClassifierSpec: for the same bytes they must agree, whatever the settings."""
    policy = RoutingPolicySpec.model_validate(
        {
            "classifier": {
                "source": {"configMapRef": {"name": "clf"}},
                "input": "AllUserMessages",
                "tiering": "Request",
                "maxInputChars": 999,
                "noTextTier": "simple",
                "tiers": [{"name": "simple", "threshold": 0.7}, {"name": "complex"}],
            },
            "models": [{"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"}],
            "routes": [
                {"tier": "simple", "baseline": "big"},
                {"tier": "complex", "baseline": "big"},
            ],
        }
    )
    ref = rendermeta.PolicyRef("p", "ns", "uid")
    config = render_routerconfig.router_config(ref, policy, RoutingPolicyStatus())
    sha = model_sha256(MODEL)
    assert classifier_digest(sha, config.classifier) == classifier_digest(sha, policy.classifier)
