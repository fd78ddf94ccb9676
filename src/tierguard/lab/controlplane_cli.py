"""``python -m tierguard.lab.controlplane build|up`` (see :mod:`tierguard.lab.controlplane`)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from tierguard.lab.controlplane import LARGE_SERVICE_CIDR, SERVICE_CIDR, ControlPlane
from tierguard.lab.controlplane_binaries import ETCD_VERSION, K8S_VERSION, ensure_binaries
from tierguard.lab.processes import LabError


@contextlib.contextmanager
def _timed(label: str, out: IO[str]) -> Iterator[None]:
    t0 = time.monotonic()
    yield
    print(f"[tierguard] {label} in {time.monotonic() - t0:.1f}s", file=out, flush=True)


def _cmd_build(args: argparse.Namespace) -> int:
    with _timed("control-plane binaries ready", sys.stderr):
        binaries = ensure_binaries(args.k8s_version, args.etcd_version, build=not args.no_build)
    print(f"bin directory: {binaries.etcd.parent}")
    for name, version in binaries.versions().items():
        print(f"  {name:<24} {version}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    from tierguard.lab.prometheus import Prometheus  # the control plane works without it

    # Ctrl-C must stop us even when a shell started us in the background with SIGINT
    # ignored (non-interactive shells do that for `cmd &`); SIGTERM/SIGHUP become
    # SystemExit in ControlPlane.start(). Either way the finally block below cleans up.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    binaries = ensure_binaries(args.k8s_version, args.etcd_version, build=not args.no_build)
    workdir = Path(args.workdir) if args.workdir else None
    prom: Prometheus | None = None
    with _timed("control plane up", sys.stderr):
        cp = ControlPlane(
            binaries,
            workdir=workdir,
            keep_workdir=args.keep,
            service_cidr=args.service_cidr,
            audit=args.audit,
        ).start()
    try:
        print(f"kubeconfig: {cp.kubeconfig}")
        print(f"server:     {cp.server}")
        print(f"logs:       {cp.logs_dir}")
        if cp.audit:
            print(f"audit log:  {cp.audit_log}")
        if args.prometheus:
            prom = Prometheus(scrape_interval=args.scrape_interval).start()
            print(f"prometheus: {prom.url}  (targets file: {prom.targets_file})")
        print("# paste into another shell:")
        print(f"export KUBECONFIG={cp.kubeconfig}")
        if prom is not None:
            print(f"export PROMETHEUS_URL={prom.url}")
        print("# Ctrl-C stops everything", flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        print("[tierguard] stopping", file=sys.stderr, flush=True)
        if prom is not None:
            prom.stop()
        cp.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tierguard.lab.controlplane",
        description="Build and run a real Kubernetes control plane on loopback.",
    )
    parser.add_argument("--k8s-version", default=K8S_VERSION)
    parser.add_argument("--etcd-version", default=ETCD_VERSION)
    parser.add_argument(
        "--no-build", action="store_true", help="fail instead of building missing binaries"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="find or build the binaries and print their versions")
    up = sub.add_parser("up", help="start the control plane and keep it up until Ctrl-C")
    up.add_argument("--workdir", help="directory for certs, etcd data and logs (default: temp)")
    up.add_argument("--keep", action="store_true", help="keep the workdir after stopping")
    up.add_argument("--prometheus", action="store_true", help="also start a Prometheus")
    up.add_argument("--scrape-interval", default="1s", help="Prometheus scrape interval")
    up.add_argument(
        "--service-cidr",
        default=SERVICE_CIDR,
        help=f"Service ClusterIP range (a /24 holds ~250 Services; {LARGE_SERVICE_CIDR} "
        "for the scale benchmark)",
    )
    up.add_argument("--audit", action="store_true", help="write the API server's audit log")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            return _cmd_build(args)
        return _cmd_up(args)
    except LabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C while building or starting; cleanup already ran
        return 130
