"""The generator: deterministic, seed 003's categories and mix, disjoint template splits."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from tierguard.classifier import dataset as ds
from tierguard.classifier.querytemplates import PLAIN


def test_same_seed_same_examples_other_seed_other_examples() -> None:
    assert ds.generate(300, seed=5) == ds.generate(300, seed=5)
    assert ds.generate(300, seed=5) != ds.generate(300, seed=6)


def test_categories_are_seed_003s() -> None:
    assert set(ds.SIMPLE_CATEGORIES) == {
        "account_lookup", "billing_status", "password_reset", "order_tracking", "opening_hours",
    }  # fmt: skip
    assert set(ds.COMPLEX_CATEGORIES) == {
        "refund_dispute", "plan_change", "integration_troubleshooting", "billing_anomaly",
    }  # fmt: skip
    assert abs(sum(ds.CATEGORY_WEIGHTS.values()) - 1.0) < 1e-9


def test_mix_labels_and_hard_cases() -> None:
    examples = ds.generate(6000, seed=1)
    assert len(examples) == 6000
    simple_share = sum(e.tier == "simple" for e in examples) / len(examples)
    assert 0.62 < simple_share < 0.68  # seed 003: about 65 % simple
    assert Counter(e.category for e in examples).keys() == ds.CATEGORIES.keys()
    for e in examples:
        assert e.tier == ds.CATEGORIES[e.category]
        assert e.text.strip()
    hard = [e for e in examples if e.hard]
    complex_n = sum(e.tier == "complex" for e in examples)
    assert 0.25 < len(hard) / complex_n < 0.35
    assert all(e.tier == "complex" and e.looks_like in ds.SIMPLE_CATEGORIES for e in hard)
    # varied phrasing, not a handful of strings
    assert len({e.text for e in examples}) > 0.8 * len(examples)


def test_holdout_split_uses_templates_training_never_sees() -> None:
    for templates in PLAIN.values():
        train = set(ds._subset(templates, "train"))
        held = set(ds._subset(templates, "holdout"))
        assert held and train and not (train & held)
        assert train | held == set(templates)
    with pytest.raises(ValueError, match="split must be one of"):
        ds.generate(1, split="test")


def test_shipped_sample_is_the_generator_output(repo_root: Path) -> None:
    path = repo_root / "examples" / "classifier" / "sample-queries.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines == [e.to_json() for e in ds.generate(300, seed=7, split="all")]
    assert json.loads(lines[0]).keys() >= {"text", "tier", "category", "hard"}
