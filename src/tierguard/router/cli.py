"""``tierguard router``: run the data plane.

Configuration comes from a file (``--config``, watched for changes) or from a ConfigMap
watched through the Kubernetes API (``--configmap NAME``, in-cluster credentials or
``--kubeconfig``). SIGTERM drains: the listener closes, in-flight requests get up to the
request deadline to finish. ``--workers N`` runs N router processes on the same port
(:mod:`~tierguard.router.workers`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from aiohttp import web

from tierguard.router.config_source import (
    ConfigMapSource,
    ConfigSource,
    FileSource,
    KubeAccess,
)

log = logging.getLogger("tierguard.router")


def configure(parser: argparse.ArgumentParser) -> None:
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--config", metavar="FILE", help="router config file (YAML), watched")
    src.add_argument(
        "--configmap", metavar="NAME", help="watch this ConfigMap through the Kubernetes API"
    )
    parser.add_argument(
        "--namespace",
        default=os.environ.get("POD_NAMESPACE"),
        help="ConfigMap namespace (default: $POD_NAMESPACE, then the service account's namespace)",
    )
    parser.add_argument(
        "--kubeconfig", default=None, help="kubeconfig path (default: in-cluster service account)"
    )
    parser.add_argument("--host", default=None, help="listen address (default: config)")
    parser.add_argument("--port", type=int, default=None, help="listen port (default: config)")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=1.0,
        help="seconds between config file checks (file mode)",
    )
    parser.add_argument(
        "--event-loop",
        default=os.environ.get("TIERGUARD_EVENT_LOOP", "auto"),
        help="auto (uvloop if installed, else asyncio with a warning), uvloop (fail without "
        "it) or asyncio (default: $TIERGUARD_EVENT_LOOP, then auto)",
    )
    parser.add_argument(
        "--workers",
        type=_positive,
        default=_positive(os.environ.get("TIERGUARD_ROUTER_WORKERS", "1")),
        help="router processes sharing the port (SO_REUSEPORT), metrics summed over them "
        "(default: $TIERGUARD_ROUTER_WORKERS, then 1)",
    )
    parser.add_argument(
        "--log-level",
        default=os.environ.get("TIERGUARD_LOG_LEVEL"),
        help="debug, info, warning, error (default: $TIERGUARD_LOG_LEVEL, "
        "then the config's server.logLevel)",
    )


def _positive(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 64:
        raise argparse.ArgumentTypeError(f"{text}: workers must be between 1 and 64")
    return value


def _namespace(arg: str | None) -> str:
    if arg:
        return arg
    path = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return "default"


def build_source(args: argparse.Namespace) -> ConfigSource:
    if args.config:
        return FileSource(args.config, args.poll_interval)
    access = KubeAccess.from_environment(args.kubeconfig)
    return ConfigMapSource(access, _namespace(args.namespace), args.configmap)


async def serve(args: argparse.Namespace) -> int:
    from tierguard.router import heap
    from tierguard.router.app import RouterSettings, create_app
    from tierguard.router.config_source import parse_config
    from tierguard.router.workers import is_worker

    source = build_source(args)
    config = parse_config(await source.load())
    if args.log_level is None:
        logging.getLogger().setLevel(config.server.log_level.upper())
    app = create_app(
        RouterSettings(config=config, source=source, budget_ledger=budget_ledger_path())
    )
    host = args.host or config.server.host
    port = args.port or config.server.port
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=_grace(config.server.request_deadline),
    )
    await runner.setup()
    # a worker of several shares the port with its siblings (the kernel balances them)
    site = web.TCPSite(
        runner, host, port, backlog=1024, reuse_address=True, reuse_port=is_worker() or None
    )
    await site.start()
    settled = heap.settle()
    log.info(
        "tierguard router serving policy %s on %s:%d (config from %s; %d start-up objects "
        "frozen out of the garbage collector's way)",
        config.policy,
        host,
        port,
        source.describe(),
        settled.frozen,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("shutting down: draining in-flight requests")
    await runner.cleanup()
    return 0


def budget_ledger_path() -> Path | None:
    """This process's pre-flight budget ledger file (``$TIERGUARD_ROUTER_BUDGET_LEDGER``,
    the operator's Deployment sets it; a worker of several adds ``.worker<index>``)."""
    from tierguard.router.mirrorbudget import LEDGER_ENV
    from tierguard.router.workers import WORKER_ENV

    path = os.environ.get(LEDGER_ENV)
    if not path:
        return None
    worker = os.environ.get(WORKER_ENV)
    return Path(f"{path}.worker{worker}" if worker else path)


def _grace(deadline: str) -> float:
    from tierguard.api.durations import parse_duration

    return parse_duration(deadline) + 1.0


def run(args: argparse.Namespace) -> int:
    from tierguard.router.workers import WORKER_ENV, is_worker, supervise

    worker = f" worker {os.environ[WORKER_ENV]}" if is_worker() else ""
    logging.basicConfig(
        level=(args.log_level or "info").upper(),
        format=f"%(asctime)s %(levelname)s %(name)s{worker}: %(message)s",
    )
    if args.workers > 1 and not is_worker():
        return supervise(args)
    from tierguard.router.config_source import ConfigError, ConfigSourceError
    from tierguard.router.eventloop import EventLoopUnavailableError, choose_event_loop

    try:
        loop = choose_event_loop(args.event_loop)
    except EventLoopUnavailableError as exc:
        log.error("%s", exc)
        return 2
    if loop.warning:
        log.warning("%s", loop.warning)
    log.info("event loop: %s", loop.name)
    try:
        with asyncio.Runner(loop_factory=loop.factory) as runner:
            return runner.run(serve(args))
    except (ConfigError, ConfigSourceError) as exc:
        log.error("%s", exc)
        return 2
