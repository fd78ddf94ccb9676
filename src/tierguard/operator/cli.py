"""``tierguard operator``: run the control plane (kopf) in or outside a cluster.

Credentials: ``--kubeconfig`` (or ``$KUBECONFIG``), else the in-cluster service account.
Scope: ``--namespace`` (repeatable; kopf glob patterns allowed) or ``--all-namespaces``.
Two replicas: kopf peering elects one active replica when the KopfPeering CRDs are
installed (the chart does); each replica gets a random priority unless ``--priority``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random

from tierguard.operator.rendermeta import InvalidMetadataError, RenderedMetadata, parse_pairs


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file (default: $KUBECONFIG, then in-cluster)",
    )
    parser.add_argument("--context", default=None, help="kubeconfig context")
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch this namespace (repeatable; globs allowed)",
    )
    scope.add_argument(
        "--all-namespaces",
        "-A",
        action="store_true",
        help="watch every namespace (default when no --namespace)",
    )
    parser.add_argument(
        "--resync",
        type=float,
        default=float(os.environ.get("TIERGUARD_RESYNC_SECONDS", "60")),
        help="longest pause between two reconciles of a policy, seconds",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=int(os.environ.get("TIERGUARD_WORKERS", "16")),
        help="threads that run reconciles (a policy never uses more than one at a time)",
    )
    parser.add_argument(
        "--query-round",
        type=float,
        default=float(os.environ.get("TIERGUARD_QUERY_ROUND_SECONDS", "5")),
        help="batch the built-in gate queries of all policies into one query per signal, "
        "reused for this many seconds (0: one query set per policy)",
    )
    parser.add_argument(
        "--prometheus-url",
        default=os.environ.get("TIERGUARD_PROMETHEUS_URL"),
        help="override every policy's spec.prometheus.url",
    )
    parser.add_argument(
        "--namespace-label",
        default=None,
        help="also match router metrics on this label = policy namespace",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=int(os.environ.get("TIERGUARD_METRICS_PORT", "0")),
        help="serve the operator's metrics on this port (0: off)",
    )
    parser.add_argument("--metrics-address", default="0.0.0.0")
    parser.add_argument(
        "--liveness",
        default=os.environ.get("TIERGUARD_LIVENESS"),
        help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--readiness",
        default=os.environ.get("TIERGUARD_READINESS"),
        help="readiness endpoint, e.g. http://0.0.0.0:8081/readyz: 200 while the API server "
        "answers the policy list (liveness, --liveness, only says the event loop runs)",
    )
    parser.add_argument(
        "--standalone", action="store_true", help="no peering even if the KopfPeering CRDs exist"
    )
    parser.add_argument(
        "--peering-name",
        default=None,
        help="kopf peering object; setting it makes peering mandatory (default: kopf's "
        "'default' peering when its CRDs exist, else standalone)",
    )
    parser.add_argument(
        "--priority",
        type=int,
        default=None,
        help="peering priority (default: random, so exactly one replica acts)",
    )
    parser.add_argument(
        "--peering-lifetime",
        type=int,
        default=int(os.environ.get("TIERGUARD_PEERING_LIFETIME", "60")),
        help="seconds a replica's peering record stays valid; a standby takes over at most "
        "this long after the active replica died (kopf's default: 60)",
    )
    parser.add_argument(
        "--rendered-label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra label on every object rendered for a policy (repeatable), e.g. "
        "release=kube-prometheus-stack so that Prometheus selects the routers' ServiceMonitors",
    )
    parser.add_argument(
        "--rendered-annotation",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra annotation on every object rendered for a policy (repeatable)",
    )
    parser.add_argument("--log-level", default=os.environ.get("TIERGUARD_LOG_LEVEL", "info"))


def rendered_metadata(args: argparse.Namespace) -> RenderedMetadata:
    """The --rendered-label/--rendered-annotation flags, checked (a bad one stops start-up
    with the reason instead of failing every apply later)."""
    return RenderedMetadata(
        labels=parse_pairs(args.rendered_label, "label"),
        annotations=parse_pairs(args.rendered_annotation, "annotation"),
    )


def run(args: argparse.Namespace) -> int:
    import kopf

    from tierguard.operator import handlers
    from tierguard.operator.controller import Controller, ControllerSettings
    from tierguard.operator.kube import Kube, load_api_client
    from tierguard.operator.telemetry import OperatorMetrics

    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if str(args.log_level).lower() != "debug":
        # kopf logs every successful handler call at INFO; our wake-up handler runs on
        # every watch event, which would drown the rollout's own log lines.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    try:
        rendered = rendered_metadata(args)
    except InvalidMetadataError as exc:
        logging.getLogger("tierguard.operator").error("%s", exc)
        return 2
    if args.kubeconfig:
        # kopf's login (login_via_client) and our client read the same file.
        os.environ["KUBECONFIG"] = args.kubeconfig
    metrics = OperatorMetrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port, args.metrics_address)
    handlers.PEERING_LIFETIME = args.peering_lifetime
    handlers.CONTROLLER = Controller(
        # A keep-alive connection per reconcile thread, plus a few for the readiness check
        # and event posting.
        Kube(load_api_client(args.kubeconfig, args.context), connections=args.workers + 4),
        ControllerSettings(
            resync_seconds=args.resync,
            workers=args.workers,
            query_round_seconds=args.query_round,
            prometheus_url=args.prometheus_url,
            namespace_label=args.namespace_label,
            rendered=rendered,
        ),
        metrics,
    )
    handlers.READINESS_ENDPOINT = args.readiness
    handlers.WATCHED_NAMESPACES = list(args.namespace)
    priority = args.priority if args.priority is not None else random.randint(1, 1_000_000)
    kopf.run(
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        standalone=True if args.standalone else None,
        priority=priority,
        peering_name=None if args.standalone else args.peering_name,
        liveness_endpoint=args.liveness,
    )
    return 0
