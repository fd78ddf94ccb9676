"""Why TF-IDF word + character n-grams: compare it with simpler routers on the same data.

Every candidate is calibrated the way the shipped model is (cheapest threshold with at
most 3 % of complex queries routed as simple on the calibration set) and then judged on
the 5,000-query holdout of unseen phrasing. The keyword router is seed 001's approach
(a query is complex when it contains a "complex" word) and has no threshold to tune.

    PYTHONPATH=src python bench/classifier_ablation.py   # ~1-2 minutes, prints Markdown
"""

from __future__ import annotations

import dataclasses
import re
import warnings

import numpy as np

from tierguard.classifier.calibration import choose_threshold
from tierguard.classifier.default_model import DEFAULT_RECIPE, recipe_sets
from tierguard.classifier.evaluation import evaluate
from tierguard.classifier.train import TrainConfig, fit_pipeline, predict_proba

KEYWORDS = re.compile(
    r"\b(refund|dispute|charged|twice|downgrade|upgrade|annual|cheaper|integration|sso|"
    r"api|webhook|error|sync|invoice|prorat\w*|escalat\w*)\b",
    re.I,
)


def main() -> int:
    warnings.simplefilter("ignore")
    tiers = ("simple", "complex")
    train_set, cal_set, test_set = recipe_sets()
    y_cal = np.array([t == "complex" for t in cal_set.tiers]).astype(int)
    rows = []

    kw = np.array([[0.0, 1.0] if KEYWORDS.search(t) else [1.0, 0.0] for t in test_set.texts])
    rows.append(("keyword rules (seed 001 style)", kw, 0.5))

    base = TrainConfig()
    variants = {
        "word 1-2-grams only": dataclasses.replace(base, char_max_features=1),
        "char 2-4-grams only": dataclasses.replace(base, word_max_features=1),
        "word + char (shipped)": base,
    }
    for name, config in variants.items():
        pipe = fit_pipeline(train_set.texts, train_set.tiers, tiers, config)
        cal_p = predict_proba(pipe, cal_set.texts)
        thr = choose_threshold(
            cal_p[:, 0], y_cal, max_under_route=DEFAULT_RECIPE.max_under_route
        ).threshold
        rows.append((name, predict_proba(pipe, test_set.texts), thr))

    print("| router | threshold | cheap share | complex as simple | hard misrouted | AUC |")
    print("|---|---|---|---|---|---|")
    for name, probs, thr in rows:
        r = evaluate(
            probs, test_set.tiers, tiers, {"simple": thr}, test_set.categories, test_set.hard
        )
        auc = "n/a" if "keyword" in name else f"{r['auc']:.4f}"
        print(
            f"| {name} | {thr:.4f} | {100 * r['cheap_share']:.1f} % | "
            f"{100 * r['under_route_rate']:.1f} % | {100 * r['hard']['misroute_rate']:.1f} % | "
            f"{auc} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
