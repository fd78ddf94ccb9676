"""Shared fixtures: one small trained model for most tests, one full default build.

Training is the slow part, so both are session-scoped: the small model (1,500 queries)
takes a few seconds, the default build (8,000) about ten; only the tests that are about
the shipped model use the latter.
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
def small_train_set() -> LabelledSet:
    return examples_to_set(generate(1500, seed=11, split="train"), "small:train")


@pytest.fixture(scope="session")
def small_holdout_set() -> LabelledSet:
    return examples_to_set(generate(1000, seed=12, split="all"), "small:holdout")


@pytest.fixture(scope="session")
def small_model(small_train_set: LabelledSet, small_holdout_set: LabelledSet) -> TrainResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # skl2onnx warns that char analyzers "may not work"
        return train(small_train_set, DEFAULT_TIERS, holdout=small_holdout_set, version="test")


@pytest.fixture(scope="session")
def default_build() -> DefaultBuild:
    from tierguard.classifier.default_model import build_default

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_default()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO
