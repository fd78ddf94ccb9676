"""The vocabulary cut-off at ``max_features`` is the same on every machine."""

from __future__ import annotations

import string
from itertools import product

from tierguard.classifier.dataset import DEFAULT_TIERS
from tierguard.classifier.train import TrainConfig, fit_pipeline
from tierguard.classifier.vocabulary import select_vocabulary, top_terms

#: 300 distinct words, each in exactly two texts: every word ties with every other.
WORDS = ["".join(p) for p in product(string.ascii_lowercase, repeat=2)][:300]
TIED_TEXTS = [" ".join(WORDS[i : i + 10]) for i in range(0, 300, 10)] * 2


def test_top_terms_breaks_ties_by_the_term() -> None:
    df = {"b": 3, "a": 3, "d": 5, "c": 3, "rare": 1}
    assert top_terms(df, min_df=2, max_features=3) == ["a", "b", "d"]
    assert top_terms(df, min_df=2, max_features=None) == ["a", "b", "c", "d"]
    assert top_terms(df, min_df=1, max_features=10) == ["a", "b", "c", "d", "rare"]


def test_select_vocabulary_numbers_columns_in_term_order() -> None:
    vocab = select_vocabulary(TIED_TEXTS, 2, 50, analyzer="word", token_pattern=r"[a-z]+")
    assert vocab == {w: i for i, w in enumerate(sorted(WORDS)[:50])}


def test_fit_pipeline_keeps_the_first_tied_terms_whatever_numpy_sorts_with() -> None:
    """Regression: scikit-learn's own max_features cut-off kept whichever of 300 tied words
    numpy's (CPU-dependent, unstable) argsort put first, so the default model's bytes
    depended on the machine that trained it."""
    labels = [DEFAULT_TIERS[i % 2] for i in range(len(TIED_TEXTS))]
    config = TrainConfig(word_ngram_range=(1, 1), word_max_features=50, char_max_features=40)
    pipeline = fit_pipeline(TIED_TEXTS, labels, DEFAULT_TIERS, config)
    word, char = (v for _, v in pipeline.named_steps["features"].transformer_list)
    assert sorted(word.vocabulary_) == sorted(WORDS)[:50]
    grams = [{t[i : i + n] for n in (2, 3, 4) for i in range(len(t) - n + 1)} for t in TIED_TEXTS]
    df = {g: sum(g in gs for gs in grams) for g in set().union(*grams)}
    expected = sorted(sorted(df, key=lambda g: (-df[g], g))[:40])
    assert sorted(char.vocabulary_) == expected
