"""Choosing a vectoriser's vocabulary the same way on every machine.

scikit-learn's ``max_features`` keeps the most frequent n-grams by sorting document
frequencies with ``ndarray.argsort()``, which is not stable: which of the n-grams *tied*
at the cut-off survive depends on numpy's sort kernel, and numpy picks that kernel by CPU
(x86-simd-sort on AVX-512 or AVX2 machines, a scalar introsort elsewhere). Frequencies are
small integers, so ties at the cut-off are the rule, not the exception: for the default
model 458 word n-grams share the last 18 places. The same data then trains a different
model on different hardware, and ``tierguard train --default`` could not reproduce the
committed bytes. Here the cut-off is an explicit, total order: document frequency
(descending), then the n-gram itself (ascending code points). The chosen vocabulary is
passed to the vectoriser as a fixed ``vocabulary``, so nothing CPU-dependent remains.

Needs the ``train`` extra (scikit-learn is imported inside the function).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["select_vocabulary"]


def top_terms(doc_freq: Mapping[str, int], min_df: int, max_features: int | None) -> list[str]:
    """The kept terms, sorted (pure): ``df >= min_df``, then at most ``max_features`` of
    them by (document frequency descending, term ascending)."""
    kept = [(-df, term) for term, df in doc_freq.items() if df >= min_df]
    if max_features is not None and len(kept) > max_features:
        kept = sorted(kept)[:max_features]
    return sorted(term for _, term in kept)


def select_vocabulary(
    texts: Sequence[str], min_df: int, max_features: int | None, **analyzer: Any
) -> dict[str, int]:
    """The vocabulary (term -> column, columns in term order as scikit-learn numbers them)
    a ``TfidfVectorizer(binary=True, **analyzer)`` would keep with ``min_df`` and
    ``max_features``, except that ties at the cut-off are broken by the term.

    ``analyzer`` are the n-gram settings (``analyzer``, ``ngram_range``,
    ``token_pattern``, ...). Raises ``ValueError`` when no term occurs in ``min_df``
    texts (as scikit-learn does).
    """
    from sklearn.feature_extraction.text import CountVectorizer

    counts = CountVectorizer(binary=True, **analyzer)
    matrix = counts.fit_transform(texts)
    doc_freq = np.asarray(matrix.sum(axis=0)).ravel()
    terms = top_terms(
        {term: int(doc_freq[col]) for term, col in counts.vocabulary_.items()},
        min_df,
        max_features,
    )
    if not terms:
        raise ValueError("After pruning, no terms remain. Try a lower min_df or a higher max_df.")
    return {term: col for col, term in enumerate(terms)}
