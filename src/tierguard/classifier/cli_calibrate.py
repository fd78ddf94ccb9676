"""``tierguard calibrate``: choose the cheap tier's threshold on held-out data.

Examples::

    tierguard calibrate --model model.onnx --data held.jsonl --max-under-route 0.03
    tierguard calibrate --model model.onnx --data held.jsonl --target-cheap-share 0.6 \\
        --out calibrated.onnx
    tierguard calibrate --model model.onnx --data held.jsonl --target-cheap-share 0.6 --dry-run

Prints the confusion matrix and per-category misroute rates at the chosen threshold and
writes the threshold (``tierguard.thresholds``) and the report (``tierguard.calibration``)
into the model's metadata: in place unless ``--out`` is given. Reading and scoring use the
router's own runtime, so the threshold means on-line exactly what it meant here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's flags."""
    parser.add_argument("--model", type=Path, required=True, help="ONNX tier classifier")
    parser.add_argument(
        "--data", type=Path, required=True, help="held-out labelled JSON lines (not training data)"
    )
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--target-cheap-share",
        type=float,
        metavar="SHARE",
        help="share of queries to route to the cheapest tier, e.g. 0.6",
    )
    target.add_argument(
        "--max-under-route",
        "--max-misroute",
        dest="max_under_route",
        type=float,
        metavar="RATE",
        help="maximum share of complex (more expensive tier) queries routed to the cheapest "
        "tier, e.g. 0.03",
    )
    parser.add_argument(
        "--conservative",
        action="store_true",
        help="with --max-under-route: cap the 95%% upper confidence bound, not the observed rate",
    )
    parser.add_argument(
        "--out", type=Path, help="write the calibrated model here (default: in place)"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the report, write nothing")
    parser.add_argument("--json", type=Path, help="also write the calibration report as JSON")


def run(args: argparse.Namespace) -> int:
    """Score the data with the model, choose the threshold, report, and write metadata."""
    import numpy as np

    from tierguard.classifier.calibration import CalibrationError, choose_threshold
    from tierguard.classifier.data import DataError, load_jsonl
    from tierguard.classifier.evaluation import evaluate, format_report
    from tierguard.classifier.runtime import (
        META_CALIBRATION,
        META_THRESHOLDS,
        ClassifierError,
        load_classifier,
    )

    try:
        model_bytes = args.model.read_bytes()
    except OSError as exc:
        print(f"tierguard calibrate: cannot read {args.model}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        classifier = load_classifier(model_bytes)
        tiers = classifier.tiers
        data = load_jsonl(args.data, tiers, require_all_tiers=False)
        probs = classifier.probabilities(data.texts)
        index = {t: i for i, t in enumerate(tiers)}
        choice = choose_threshold(
            probs[:, 0],
            np.array([index[t] for t in data.tiers]),
            target_cheap_share=args.target_cheap_share,
            max_under_route=args.max_under_route,
            conservative=args.conservative,
        )
    except (ClassifierError, DataError, CalibrationError) as exc:
        print(f"tierguard calibrate: {exc}", file=sys.stderr)
        return 2
    thresholds = dict(classifier.thresholds)
    thresholds[tiers[0]] = choice.threshold
    report = evaluate(
        probs, data.tiers, tiers, thresholds, data.categories, data.hard, data.quality
    )
    calibration = {
        **choice.to_json(),
        "conservative": bool(args.conservative),
        "data_sha256": data.sha256,
        "data_source": str(args.data),
        "report": report,
    }
    print(
        f"{choice.method} = {choice.target}: threshold({tiers[0]}) = {choice.threshold} "
        f"(was {classifier.thresholds[tiers[0]]})\n"
    )
    print(format_report(report))
    if args.json:
        args.json.write_text(json.dumps(calibration, indent=2) + "\n", encoding="utf-8")
    if args.dry_run:
        print("\n--dry-run: model not written")
        return 0
    from tierguard.classifier.train import MissingTrainingExtraError, write_metadata

    try:
        updated = write_metadata(
            model_bytes,
            {
                META_THRESHOLDS: json.dumps(thresholds),
                META_CALIBRATION: json.dumps(calibration, sort_keys=True, separators=(",", ":")),
            },
        )
    except MissingTrainingExtraError as exc:
        print(f"tierguard calibrate: {exc}", file=sys.stderr)
        return 1
    out: Path = args.out or args.model
    load_classifier(updated)  # never write a model the router would refuse
    out.write_bytes(updated)
    print(f"\nwrote {out}: {META_THRESHOLDS} = {json.dumps(thresholds)}")
    return 0
