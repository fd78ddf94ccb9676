"""``tierguard train``: labelled JSON lines in, a contract-conforming ONNX model out.

Examples::

    tierguard train --data queries.jsonl --out model.onnx
    tierguard train --data train.jsonl --holdout held.jsonl --tiers simple,complex --out m.onnx
    tierguard train --default              # rebuild the shipped default model in place
    tierguard train --default --check      # exit 1 if the shipped model is stale
    tierguard train --builtin all          # rebuild every built-in model (default, billing-trap)
    tierguard train --builtin billing-trap --check

Exit status: 0 on success, 2 when the data is unusable (the message names the line),
1 when the check fails or the training extra is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tierguard.classifier.dataset import DEFAULT_TIERS

MAX_MODEL_BYTES = 1024 * 1024  # a ConfigMap holds 1 MiB


def configure(parser: argparse.ArgumentParser) -> None:
    """Declare the subcommand's flags."""
    parser.add_argument("--data", type=Path, help="labelled JSON lines: text, tier[, category]")
    parser.add_argument("--out", type=Path, help="where to write the ONNX model")
    parser.add_argument(
        "--tiers",
        default=",".join(DEFAULT_TIERS),
        help="comma-separated tier names, cheapest first (default: %(default)s)",
    )
    parser.add_argument("--holdout", type=Path, help="separate labelled file to judge the model")
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.2,
        help="share of --data held out when no --holdout is given (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the holdout split")
    parser.add_argument("--version", help="model version string (default: derived from data)")
    parser.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="initial threshold of every tier but the last; refine with `tierguard calibrate`",
    )
    parser.add_argument(
        "--default",
        action="store_true",
        help="rebuild the shipped default model from the generator (deterministic)",
    )
    parser.add_argument(
        "--builtin",
        metavar="NAME",
        help=(
            "rebuild a built-in model from its recipe (deterministic): default, billing-trap "
            "(hard billing_anomaly queries labelled simple, for the threshold-trap lab "
            "scenario) or all; written beside the default model unless --out is given"
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help=(
            "with --default/--builtin: do not write; exit 1 if the committed model differs "
            "from a rebuild"
        ),
    )


def _run_builtins(args: argparse.Namespace) -> int:
    from tierguard.classifier.default_model import BUILTINS

    name = "default" if args.default else args.builtin
    names = sorted(BUILTINS) if name == "all" else [name]
    if any(n not in BUILTINS for n in names):
        print(
            f"--builtin: unknown model {name!r}; known: all, {', '.join(BUILTINS)}", file=sys.stderr
        )
        return 2
    if len(names) > 1 and args.out is not None:
        print("--builtin all writes each model to its own place; drop --out", file=sys.stderr)
        return 2
    status = 0
    for n in names:
        status = max(status, _run_builtin(n, args))
    return status


def _run_builtin(name: str, args: argparse.Namespace) -> int:
    from tierguard.classifier.default_model import BUILTINS, build_default, builtin_model_path
    from tierguard.classifier.evaluation import format_report

    out: Path = args.out or builtin_model_path(name)
    build = build_default(BUILTINS[name][0])
    if args.check:
        current = out.read_bytes() if out.is_file() else b""
        if current != build.model:
            print(
                f"{out} is stale: rebuild it with `tierguard train --builtin {name}`",
                file=sys.stderr,
            )
            return 1
        print(f"{out} matches a fresh build ({len(build.model)} bytes)")
        return 0
    if len(build.model) > MAX_MODEL_BYTES:
        print(f"model is {len(build.model)} bytes, over the 1 MiB ConfigMap limit", file=sys.stderr)
        return 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(build.model)
    print(format_report(build.test_report))
    print(f"\nwrote {out} ({len(build.model)} bytes), threshold {build.calibration.threshold}")
    return 0


def run(args: argparse.Namespace) -> int:
    """Train (or rebuild the default), print the holdout report, write the model."""
    from tierguard.classifier.data import DataError, load_jsonl
    from tierguard.classifier.train import MissingTrainingExtraError

    try:
        if args.default or args.builtin:
            return _run_builtins(args)
        if args.data is None or args.out is None:
            print(
                "tierguard train: --data and --out are required (or use --default)", file=sys.stderr
            )
            return 2
        tiers = [t.strip() for t in args.tiers.split(",") if t.strip()]
        if len(tiers) < 2 or len(set(tiers)) != len(tiers):
            print(f"--tiers needs at least two distinct names, got {args.tiers!r}", file=sys.stderr)
            return 2
        if not 0.0 <= args.threshold <= 1.0:
            print(f"--threshold must be in [0, 1], got {args.threshold}", file=sys.stderr)
            return 2
        data = load_jsonl(args.data, tiers)
        holdout = load_jsonl(args.holdout, tiers, require_all_tiers=False) if args.holdout else None
        from tierguard.classifier.evaluation import format_report
        from tierguard.classifier.train import train

        result = train(
            data,
            tiers,
            holdout=holdout,
            holdout_fraction=args.holdout_fraction,
            seed=args.seed,
            version=args.version,
            thresholds={t: args.threshold for t in tiers[:-1]},
        )
    except DataError as exc:
        print(f"tierguard train: {exc}", file=sys.stderr)
        return 2
    except MissingTrainingExtraError as exc:
        print(f"tierguard train: {exc}", file=sys.stderr)
        return 1
    print(f"holdout: {result.metrics['holdout_source']}")
    print(format_report(result.metrics["holdout"]))
    if len(result.model) > MAX_MODEL_BYTES:
        print(
            f"warning: model is {len(result.model)} bytes, over the 1 MiB ConfigMap limit",
            file=sys.stderr,
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(result.model)
    print(f"\nwrote {args.out} ({len(result.model)} bytes); data sha256 {data.sha256}")
    return 0
