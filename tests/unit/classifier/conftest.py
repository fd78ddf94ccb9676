"""Shared fixtures: one small trained model for most tests, one full default build.

Training is the slow part, so both are session-scoped: the tiny model (400 queries)
takes a few seconds, the default build (8,000) ten to twenty; only the tests that are
about the shipped model use the latter.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from tierguard.classifier.data import LabelledSet
from tierguard.classifier.dataset import DEFAULT_TIERS, generate
from tierguard.classifier.default_model import DefaultBuild, examples_to_set
from tierguard.classifier.train import TrainResult, train

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def tiny_train_set() -> LabelledSet:
    return examples_to_set(generate(400, seed=21, split="train"), "tiny:train")


@pytest.fixture(scope="session")
def tiny_holdout_set() -> LabelledSet:
    return examples_to_set(generate(600, seed=22, split="all"), "tiny:holdout")


@pytest.fixture(scope="session")
def tiny_model(tiny_train_set: LabelledSet, tiny_holdout_set: LabelledSet) -> TrainResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skl2onnx warns that char analyzers "may not work"
        return train(tiny_train_set, DEFAULT_TIERS, holdout=tiny_holdout_set, version="test")


@pytest.fixture(scope="session")
def default_build() -> DefaultBuild:
    from tierguard.classifier.default_model import build_default

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_default()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
