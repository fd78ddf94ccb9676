"""The recipe for the shipped default model (``tierguard train --default``).

Every number is fixed here so the committed ``default/model.onnx`` can be rebuilt
bit-for-bit by anyone with the ``train`` extra, and a test checks that it was:

1. train on 8,000 generated queries (seed 1, ``split="train"``);
2. calibrate the ``simple`` threshold on 2,000 queries (seed 2, ``split="holdout"``,
   phrasing never seen in training) so that at most 3 % of complex queries go to the
   cheap model (the seed 003 risk, capped rather than averaged away);
3. evaluate on 5,000 queries (seed 3, ``split="holdout"``) at that threshold, like
   seed 003's 5,000-query holdout; those figures are the model card's and are stored
   in the model's ``tierguard.metrics``;
4. a category head (:mod:`~tierguard.classifier.categoryhead`) trained on the same
   8,000 queries' categories, its accuracy on the same 5,000.

Two built-in models follow recipes here (``tierguard train --builtin NAME``, and a test
checks that each committed file is a fresh build): ``default`` (the shipped model) and
``billing-trap``, the default recipe with seed 003's labelling mistake: the hard
``billing_anomaly`` queries (a double charge asked as a balance question) labelled
``simple`` in the training and calibration data, so this model puts most of them on the
cheap tier while its aggregate figures barely move. The lab's ``threshold-trap`` scenario
rolls it out as a classifier change; the gates must catch it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from tierguard.classifier.calibration import ThresholdChoice, choose_threshold
from tierguard.classifier.data import LabelledSet, parse_jsonl
from tierguard.classifier.dataset import DEFAULT_TIERS, Example, generate
from tierguard.classifier.evaluation import evaluate

__all__ = [
    "BILLING_TRAP_RECIPE",
    "BUILTINS",
    "DEFAULT_RECIPE",
    "DefaultBuild",
    "Recipe",
    "build_default",
    "builtin_model_path",
    "examples_to_set",
]


@dataclass(frozen=True)
class Recipe:
    """Sizes and seeds of the default model's three data sets and its calibration target."""

    train_n: int = 8000
    train_seed: int = 1
    calibration_n: int = 2000
    calibration_seed: int = 2
    test_n: int = 5000
    test_seed: int = 3
    max_under_route: float = 0.03
    version: str = "default-1"
    #: complex categories whose hard (simple-looking) examples are labelled ``simple`` in
    #: the training and calibration sets (never in the test set: it keeps the truth)
    relabel_hard: tuple[str, ...] = ()


DEFAULT_RECIPE = Recipe()
BILLING_TRAP_RECIPE = Recipe(version="billing-trap-1", relabel_hard=("billing_anomaly",))
#: name -> (recipe, file name beside the default model, in ``classifier/default/``)
BUILTINS: dict[str, tuple[Recipe, str]] = {
    "default": (DEFAULT_RECIPE, "model.onnx"),
    "billing-trap": (BILLING_TRAP_RECIPE, "billing-trap.onnx"),
}
#: a production-like draw (seen and unseen phrasing, split "all") reported beside the holdout
MIX_N = 5000
MIX_SEED = 4


@dataclass
class DefaultBuild:
    """The built model plus everything the model card and tests need to recompute it."""

    model: bytes
    calibration: ThresholdChoice
    test_report: dict[str, Any]
    train_set: LabelledSet
    calibration_set: LabelledSet
    test_set: LabelledSet
    pipeline: Any = None  # the scikit-learn pipeline (for the ONNX agreement test)
    head: Any = None  # the category head (CategoryHead), for the same test


def examples_to_set(examples: list[Example], where: str) -> LabelledSet:
    """Serialise generated examples to JSON lines and parse them back (so the training-data
    hash is the hash of exactly the file ``python -m tierguard.classifier.dataset`` writes)."""
    content = "".join(e.to_json() + "\n" for e in examples).encode("utf-8")
    return parse_jsonl(content, DEFAULT_TIERS, where)


def builtin_model_path(name: str) -> Path:
    """Where the built-in model ``name`` (a key of :data:`BUILTINS`) is committed."""
    from tierguard.classifier.runtime import default_model_path

    if name not in BUILTINS:
        raise KeyError(f"no built-in classifier {name!r}; known: {sorted(BUILTINS)}")
    return default_model_path().parent / BUILTINS[name][1]


def _relabel(examples: list[Example], categories: tuple[str, ...]) -> list[Example]:
    """Hard examples of ``categories`` labelled with the simple tier (a labelling mistake)."""
    if not categories:
        return examples
    return [
        replace(e, tier=DEFAULT_TIERS[0]) if e.hard and e.category in categories else e
        for e in examples
    ]


def recipe_sets(recipe: Recipe = DEFAULT_RECIPE) -> tuple[LabelledSet, LabelledSet, LabelledSet]:
    """The (train, calibration, test) sets of a recipe."""
    train_set = examples_to_set(
        _relabel(generate(recipe.train_n, recipe.train_seed, "train"), recipe.relabel_hard),
        "generated:train",
    )
    cal_set = examples_to_set(
        _relabel(
            generate(recipe.calibration_n, recipe.calibration_seed, "holdout"),
            recipe.relabel_hard,
        ),
        "generated:calibration",
    )
    test_set = examples_to_set(
        generate(recipe.test_n, recipe.test_seed, "holdout"), "generated:test"
    )
    return train_set, cal_set, test_set


def build_default(recipe: Recipe = DEFAULT_RECIPE) -> DefaultBuild:
    """Train, calibrate and evaluate the default model (10-20 s on one core).

    Calibration and evaluation score the *exported ONNX model through the router's
    runtime*, not the scikit-learn pipeline, so the threshold and every figure in the
    metadata and the model card describe the bytes that ship.
    """
    from tierguard.classifier.runtime import load_classifier
    from tierguard.classifier.train import (
        MODEL_FAMILY,
        TrainConfig,
        build_metadata,
        category_head_report,
        export_onnx,
        fit_pipeline,
        train_category_head,
        write_metadata,
    )

    tiers = DEFAULT_TIERS
    train_set, cal_set, test_set = recipe_sets(recipe)
    config = TrainConfig()
    pipeline = fit_pipeline(train_set.texts, train_set.tiers, tiers, config)
    head = train_category_head(pipeline, train_set, config)
    provisional = {tiers[0]: 0.5}
    bare = export_onnx(
        pipeline, build_metadata(tiers, provisional, recipe.version, train_set.sha256, {}), head
    )
    runtime = load_classifier(bare)
    index = {t: i for i, t in enumerate(tiers)}
    cal_probs = runtime.probabilities(cal_set.texts)
    choice = choose_threshold(
        cal_probs[:, 0],
        np.array([index[t] for t in cal_set.tiers]),
        max_under_route=recipe.max_under_route,
    )
    thresholds = {tiers[0]: choice.threshold}
    cal_report = evaluate(
        cal_probs, cal_set.tiers, tiers, thresholds, cal_set.categories, cal_set.hard
    )
    test_probs = runtime.probabilities(test_set.texts)
    test_report = evaluate(
        test_probs, test_set.tiers, tiers, thresholds, test_set.categories, test_set.hard
    )
    metrics = {
        "holdout": test_report,
        "holdout_source": (
            f"generated: {recipe.test_n} queries, seed {recipe.test_seed}, split 'holdout' "
            "(templates never seen in training)"
        ),
        "train_examples": recipe.train_n,
        "model": MODEL_FAMILY,
        "config": config.to_json(),
        "recipe": dict(recipe.__dict__),
    }
    if head is not None:
        metrics["category_head"] = category_head_report(head, test_set)
    calibration = {
        **choice.to_json(),
        "data_sha256": cal_set.sha256,
        "data_source": cal_set.source,
        "report": cal_report,
    }
    meta = build_metadata(
        tiers,
        thresholds,
        recipe.version,
        train_set.sha256,
        metrics,
        calibration,
        categories=head.labels if head else None,
    )
    model = write_metadata(bare, meta)
    return DefaultBuild(model, choice, test_report, train_set, cal_set, test_set, pipeline, head)


def card_reports(model_path: str | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(title, data source, report) for the card's three sets, scored with a model
    (default: the shipped one) through the runtime at the model's own thresholds."""
    from tierguard.classifier.runtime import default_model_path, load_classifier

    clf = load_classifier(model_path or default_model_path())
    _, cal_set, test_set = recipe_sets()
    mix = examples_to_set(generate(MIX_N, MIX_SEED, "all"), "generated:mix")
    out = []
    sets = (("Holdout (test)", test_set), ("Calibration set", cal_set), ("Traffic mix", mix))
    for title, data in sets:
        probs = clf.probabilities(data.texts)
        report = evaluate(probs, data.tiers, clf.tiers, clf.thresholds, data.categories, data.hard)
        out.append((title, data.source, report))
    return out


def card_tables(reports: list[tuple[str, str, dict[str, Any]]] | None = None) -> str:
    """The model card's tables (Markdown) from :func:`card_reports`.

    ``python -m tierguard.classifier.default_model`` prints them for pasting into
    docs/classifier.md; the card test recomputes the same text and compares.
    """
    from tierguard.classifier.evaluation import markdown_tables

    out = []
    for title, source, report in reports if reports is not None else card_reports():
        out += [f"### {title}: {source}", "", markdown_tables(report), ""]
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    print(card_tables(card_reports(sys.argv[1] if len(sys.argv) > 1 else None)))
