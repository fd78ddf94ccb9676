"""The ``tierguard`` command.

Each subcommand lives in the module that owns it and exposes two functions,
``configure(parser: argparse.ArgumentParser) -> None`` and
``run(args: argparse.Namespace) -> int``. Modules are imported only when their
subcommand runs, so ``tierguard router`` never imports kopf and ``tierguard operator``
never imports onnxruntime.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "router": ("tierguard.router.cli", "run the data plane (OpenAI-compatible router)"),
    "operator": ("tierguard.operator.cli", "run the control plane (kopf operator)"),
    "train": ("tierguard.classifier.cli_train", "train a tier classifier and export it to ONNX"),
    "calibrate": (
        "tierguard.classifier.cli_calibrate",
        "choose classifier thresholds on held-out data",
    ),
    "lab": ("tierguard.lab.cli", "run the whole system on this machine and judge a rollout"),
    "gen-crds": ("tierguard.api.crdgen", "generate the CRD YAML from the API models"),
    "gen-docs": ("tierguard.api.docgen", "generate reference docs from the API models and metrics"),
    "fake-provider": ("tierguard.lab.fakeprovider", "run a simulated OpenAI-compatible provider"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tierguard", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == only:
            importlib.import_module(module).configure(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
