"""Calibration: exact on its own data, within tolerance on held-out data."""

from __future__ import annotations

import numpy as np
import pytest

from tierguard.classifier.calibration import CalibrationError, choose_threshold
from tierguard.classifier.dataset import generate
from tierguard.classifier.default_model import examples_to_set
from tierguard.classifier.evaluation import evaluate, wilson_upper
from tierguard.classifier.runtime import assign_tiers, default_model_path, load_classifier


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.35).astype(int)
    p_simple = np.clip(np.where(y == 0, rng.beta(6, 2, n), rng.beta(2, 5, n)), 0, 1)
    return p_simple, y


def test_target_share_is_exact_on_calibration_data() -> None:
    p, y = _synthetic(2000, 0)
    for share in (0.1, 0.5, 0.65, 0.9):
        choice = choose_threshold(p, y, target_cheap_share=share)
        assert abs(choice.cheap_share - share) <= 1 / 2000
        assert choice.cheap_share == pytest.approx(float(np.mean(p >= choice.threshold)))


def test_max_under_route_holds_and_is_the_cheapest_such_threshold() -> None:
    p, y = _synthetic(2000, 1)
    choice = choose_threshold(p, y, max_under_route=0.03)
    under = np.mean(p[y == 1] >= choice.threshold)
    assert under <= 0.03
    assert choice.under_route_rate == pytest.approx(under)
    # one step lower would break the cap (the threshold is as low as allowed, to 4 decimals)
    assert np.mean(p[y == 1] >= choice.threshold - 2e-4) > 0.03 or choice.threshold == 0.0


def test_conservative_caps_the_upper_bound() -> None:
    p, y = _synthetic(4000, 2)
    plain = choose_threshold(p, y, max_under_route=0.05)
    safe = choose_threshold(p, y, max_under_route=0.05, conservative=True)
    assert safe.threshold >= plain.threshold
    assert safe.under_route_upper95 is not None and safe.under_route_upper95 <= 0.05
    with pytest.raises(CalibrationError, match="cannot show an under-route rate"):
        choose_threshold(p[:50], y[:50], max_under_route=0.01, conservative=True)


def test_bad_requests() -> None:
    p, y = _synthetic(100, 3)
    with pytest.raises(CalibrationError, match="exactly one"):
        choose_threshold(p, y)
    with pytest.raises(CalibrationError, match="no queries labelled with a more expensive"):
        choose_threshold(p, np.zeros_like(y), max_under_route=0.05)
    with pytest.raises(CalibrationError, match="must be in"):
        choose_threshold(p, y, target_cheap_share=1.5)


def test_calibrated_share_holds_on_other_held_out_data() -> None:
    """Calibrate the shipped model on one draw, check on another: within 3 points."""
    clf = load_classifier(default_model_path())
    cal = examples_to_set(generate(2000, seed=98, split="all"), "cal")
    other = examples_to_set(generate(2000, seed=99, split="all"), "other")
    cal_p = clf.probabilities(cal.texts)
    cal_y = np.array([t == "complex" for t in cal.tiers]).astype(int)
    test_p = clf.probabilities(other.texts)
    for share in (0.5, 0.6):
        choice = choose_threshold(cal_p[:, 0], cal_y, target_cheap_share=share)
        routed = assign_tiers(test_p, [choice.threshold])
        assert abs(float(np.mean(routed == 0)) - share) <= 0.03


def test_evaluate_counts_and_slices() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3], [0.1, 0.9]])
    labels = ["simple", "complex", "complex", "simple", "simple"]
    report = evaluate(
        probs, labels, ["simple", "complex"], {"simple": 0.5},
        ["a", "b", "b", "a", "a"], [False, True, False, False, False],
    )  # fmt: skip
    assert report["confusion"]["matrix"] == [[2, 1], [1, 1]]
    assert report["under_route_rate"] == 0.5
    assert report["over_route_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert report["cheap_share"] == 0.6
    assert report["per_category"]["a"]["misroute_rate"] == pytest.approx(1 / 3, abs=1e-6)
    assert report["hard"]["n"] == 1 and report["hard"]["misroute_rate"] == 1.0
    assert report["auc"] == pytest.approx(3 / 6, abs=1e-6)  # 3 of 6 (complex, simple) pairs ordered


def test_wilson_upper() -> None:
    assert wilson_upper(0, 100) == pytest.approx(0.037, abs=1e-3)
    assert wilson_upper(5, 100) > 0.05
    assert wilson_upper(0, 0) == 1.0


def test_quality_labels_are_reported_per_routed_tier() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8]])
    report = evaluate(
        probs, ["simple", "complex", "complex"], ["simple", "complex"], {"simple": 0.5},
        quality=[1.0, 0.0, None],
    )  # fmt: skip
    q = report["quality_by_routed_tier"]
    assert q["simple"] == {"n_labelled": 2, "mean_quality": 0.5}
    assert q["complex"] == {"n_labelled": 0, "mean_quality": None}
    assert "quality_by_routed_tier" not in evaluate(
        probs, ["simple", "complex", "complex"], ["simple", "complex"], {"simple": 0.5}
    )
