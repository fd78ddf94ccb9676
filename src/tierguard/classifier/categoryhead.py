"""The classifier's category head: a second output beside the tier (needs the ``train`` extra).

Why a head at all: slice gates (``analysis.slices``) judge the loss that hides below the
tier, per category of request. Most clients send no category, so the classifier, which
reads every query anyway, labels it: ``source: Classifier`` slices take the value from
this head.

The head is a multinomial logistic regression over the tier model's **word** TF-IDF
features (the same fitted vectoriser, the same ONNX tensor), added to the exported graph
as a second output ``categories`` ``[N, C]``. So:

* one ``session.run`` computes both outputs and the tokenisation is shared: the head adds
  one small matrix product (C x 4,000), not a second pass over the text;
* the tier head is untouched: the tier probabilities, thresholds and the model card are
  exactly those of a model without the head;
* word features only (not the 8,000 character n-grams) keep the model under the 1 MiB
  ConfigMap limit (C x 4,000 floats is ~150 kB for the nine generator categories) and
  categories are a matter of words ("invoice", "tracking") more than of spelling.

The labels (sorted, at most :data:`~tierguard.classifier.contract.MAX_CATEGORIES`) are
written to the model's ``tierguard.categories`` metadata: the label map the router reads,
bounded, and part of the model bytes the classifier digest hashes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierguard.classifier.contract import (
    CATEGORY_OUTPUT_NAME,
    CATEGORY_PATTERN,
    INPUT_NAME,
    MAX_CATEGORIES,
    OUTPUT_NAME,
)
from tierguard.classifier.data import DataError
from tierguard.classifier.runtime import normalize_text

if TYPE_CHECKING:
    from onnx import ModelProto
    from sklearn.pipeline import Pipeline

__all__ = [
    "CategoryHead",
    "add_category_head",
    "category_labels",
    "fit_category_head",
    "predict_category_proba",
]

#: prefix of every tensor and node the head adds to the tier graph
_PREFIX = "category_"


@dataclass
class CategoryHead:
    """A fitted category head: its labels (column order) and the scikit-learn parts."""

    labels: tuple[str, ...]
    word: Any  # the tier pipeline's fitted word TfidfVectorizer
    logreg: Any  # LogisticRegression, class i = labels[i]


def category_labels(categories: Sequence[str | None] | None) -> tuple[str, ...] | None:
    """The head's labels for training data, or None when the data cannot train one.

    A head is trained only when *every* example has a category and there are at least two
    (a head that learnt from part of the data would label the rest at random). Raises
    :class:`DataError` when the labels cannot be slice values (too many, or not lower case).
    """
    if categories is None or any(c is None for c in categories):
        return None
    labels = tuple(sorted({c for c in categories if c is not None}))
    if len(labels) < 2:
        return None
    if len(labels) > MAX_CATEGORIES:
        raise DataError(
            f"{len(labels)} distinct categories; a category head holds at most "
            f"{MAX_CATEGORIES} (they become slice values: keep them few and coarse)"
        )
    pattern = re.compile(CATEGORY_PATTERN)
    bad = [c for c in labels if not pattern.match(c) or c == "other"]
    if bad:
        raise DataError(
            f"categories {bad[:5]} cannot be slice values (lower case letters, digits, "
            f"'-', '_', '.'; 'other' is reserved): rename them in the data"
        )
    return labels


def fit_category_head(
    pipeline: Pipeline, texts: Sequence[str], categories: Sequence[str], c: float, max_iter: int
) -> CategoryHead:
    """Fit the head on the tier pipeline's fitted word features (deterministic: lbfgs)."""
    from sklearn.linear_model import LogisticRegression

    labels = category_labels(categories)
    if labels is None:
        raise DataError("a category head needs a category on every example, at least two")
    word = dict(pipeline.named_steps["features"].transformer_list)["word"]
    x = word.transform([normalize_text(t) for t in texts])
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index[cat] for cat in categories], dtype=np.int64)
    logreg = LogisticRegression(C=c, max_iter=max_iter).fit(x, y)
    return CategoryHead(labels, word, logreg)


def predict_category_proba(head: CategoryHead, texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """scikit-learn's category probabilities (the reference for ONNX agreement)."""
    x = head.word.transform([normalize_text(t) for t in texts])
    out: npt.NDArray[np.float64] = head.logreg.predict_proba(x)
    return out


def _convert_head(head: CategoryHead, locale: str, opset: dict[str, int]) -> ModelProto:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import Pipeline

    pipeline = Pipeline([("word", head.word), ("logreg", head.logreg)])
    options: dict[int, dict[str, Any]] = {
        id(head.logreg): {"zipmap": False},
        id(head.word): {"locale": locale},
    }
    converted: ModelProto = convert_sklearn(
        pipeline,
        initial_types=[(INPUT_NAME, StringTensorType([None]))],
        options=options,
        target_opset=opset,
    )
    return converted


def add_category_head(
    model: ModelProto, head: CategoryHead, locale: str, opset: dict[str, int]
) -> None:
    """Graft the head onto the exported tier graph ``model`` (in place).

    The head's own export (word vectoriser + logistic regression) is converted with
    skl2onnx; its nodes from the classifier on (``LinearClassifier`` and the
    normalisation after it) are copied into the tier graph, reading the tier graph's word
    feature tensor (the first input of the feature union's ``Concat``), every other
    tensor renamed with a ``category_`` prefix and the probabilities renamed to
    ``categories``.
    """
    import onnx

    concat = [n for n in model.graph.node if n.op_type == "Concat"]
    if len(concat) != 1 or len(concat[0].input) != 2:
        raise RuntimeError("tier graph: expected one Concat of the word and char features")
    word_features = str(concat[0].input[0])
    head_model = _convert_head(head, locale, opset)
    nodes = list(head_model.graph.node)
    start = next(
        (i for i, n in enumerate(nodes) if n.op_type == "LinearClassifier"),
        None,
    )
    if start is None:
        raise RuntimeError("category head export has no LinearClassifier node")
    head_features = nodes[start].input[0]
    produced = {o for n in nodes[start:] for o in n.output}

    def rename(name: str) -> str:
        if name == head_features:
            return word_features
        if name == OUTPUT_NAME:
            return CATEGORY_OUTPUT_NAME
        return f"{_PREFIX}{name}" if name else ""

    initializers = {i.name: i for i in head_model.graph.initializer}
    needed: set[str] = set()
    for node in nodes[start:]:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = _PREFIX + node.name
        del copy.input[:]
        copy.input.extend(rename(i) for i in node.input)
        del copy.output[:]
        copy.output.extend(rename(o) for o in node.output)
        model.graph.node.append(copy)
        needed.update(i for i in node.input if i in initializers and i not in produced)
    for name in sorted(needed):
        init = onnx.TensorProto()
        init.CopyFrom(initializers[name])
        init.name = rename(name)
        model.graph.initializer.append(init)
    outputs = {o.name: o for o in head_model.graph.output}
    if OUTPUT_NAME not in outputs:
        raise RuntimeError(f"category head export has no {OUTPUT_NAME!r} output")
    out = onnx.ValueInfoProto()
    out.CopyFrom(outputs[OUTPUT_NAME])
    out.name = CATEGORY_OUTPUT_NAME
    model.graph.output.append(out)
