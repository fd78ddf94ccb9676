"""Router-style metrics for many policies from one process (scale tests and benchmarks).

A real router per policy is too heavy for a thousand policies on one machine; the gates
only read counters, so this exporter serves the same metric families, names and labels as
the router (from :mod:`tierguard.api.metrics`) for every policy it is given, with counters
that grow at a steady, deterministic pace. Gates then see data (Pass / Inconclusive), not
only NoData, and Prometheus carries a realistic series count.

    python -m tierguard.lab.policy_exporter --port 9400 --policies-file policies.txt

``policies.txt``: one ``namespace/name`` per line, optionally followed by the config
revision the operator rolls out: then the exporter also says, as routers do, that it runs
that revision (``tierguard_classifier_info``), so the operator's "every router runs the
target" check holds as it does for real routers and the stages are not held.
``--namespace-label namespace`` adds the label a ServiceMonitor would add (pair it with
the operator's ``--namespace-label``).
"""

from __future__ import annotations

import argparse
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tierguard.api import metrics as m

TIERS = ("simple", "complex")
ARMS = (("control", "big"), ("canary", "small"))  # (arm, model serving it)


#: The classifier digest the exporter reports (every "replica" the same one, as the
#: operator requires for the bundled model).
EXPORTER_DIGEST = "exporter"


@dataclass(frozen=True)
class PolicyRef:
    namespace: str
    name: str
    #: the config revision this "router" runs ("" : no tierguard_classifier_info)
    revision: str = ""


def parse_policies(lines: Sequence[str]) -> list[PolicyRef]:
    out = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ref, _, revision = line.partition(" ")
        ns, _, name = ref.partition("/")
        if not name:
            raise ValueError(f"expected namespace/name [revision], got {line!r}")
        out.append(PolicyRef(ns, name, revision.strip()))
    return out


class PolicyMetrics(Collector):
    """Counters per policy × tier × arm that grow with time: ``per_minute`` requests a
    minute per (policy, tier, arm), a fixed bad share per policy (0.5-5 %)."""

    def __init__(
        self,
        policies: Sequence[PolicyRef],
        *,
        per_minute: float = 60.0,
        namespace_label: str | None = None,
        latency: bool = False,
        start: float | None = None,
    ) -> None:
        self.policies = list(policies)
        self.per_minute = per_minute
        self.namespace_label = namespace_label
        self.latency = latency
        self.start = time.time() if start is None else start

    def _labels(self, p: PolicyRef, tier: str, arm: str, model: str) -> list[str]:
        out = [p.name, tier, arm, model]
        if self.namespace_label:
            out.append(p.namespace)
        return out

    def collect(self) -> Iterator[Metric]:
        minutes = max(0.0, time.time() - self.start) / 60.0
        extra = [self.namespace_label] if self.namespace_label else []
        route = [*m.ROUTE_LABELS, *extra]
        req = CounterMetricFamily(m.REQUESTS.base, m.REQUESTS.help, labels=[*route, m.OUTCOME])
        fb = CounterMetricFamily(m.FEEDBACK.base, m.FEEDBACK.help, labels=[*route, m.RATING])
        sh = CounterMetricFamily(
            m.SHADOW_JUDGEMENTS.base, m.SHADOW_JUDGEMENTS.help, labels=[*route, m.VERDICT]
        )
        dur = HistogramMetricFamily(m.REQUEST_DURATION.name, m.REQUEST_DURATION.help, labels=route)
        info = GaugeMetricFamily(
            m.CLASSIFIER_INFO.name,
            m.CLASSIFIER_INFO.help,
            labels=[*m.CLASSIFIER_INFO.labels, *extra],
        )
        for p in self.policies:
            if p.revision:
                ns = [p.namespace] if self.namespace_label else []
                info.add_metric([p.name, EXPORTER_DIGEST, p.revision, *ns], 1.0)
            seed = zlib.crc32(f"{p.namespace}/{p.name}".encode())
            bad_share = 0.005 + (seed % 10) * 0.005
            for tier in TIERS:
                for arm, model in ARMS:
                    total = float(int(self.per_minute * minutes) + seed % 97)
                    bad = float(int(total * bad_share))
                    labels = self._labels(p, tier, arm, model)
                    req.add_metric([*labels, m.OUTCOME_OK], total - bad)
                    req.add_metric([*labels, m.OUTCOME_ERROR], bad)
                    rated = float(int(total / 3))
                    down = float(int(rated * bad_share * 2))
                    fb.add_metric([*labels, m.RATING_DOWN], down)
                    fb.add_metric([*labels, m.RATING_UP], rated - down)
                    if arm == "canary":
                        judged = float(int(total / 5))
                        dis = float(int(judged * bad_share))
                        sh.add_metric([*labels, m.VERDICT_DISAGREE], dis)
                        sh.add_metric([*labels, m.VERDICT_AGREE], judged - dis)
                    if self.latency:
                        buckets = [
                            (f"{le:g}", float(int(total * min(1.0, 0.5 + le / 4.0))))
                            for le in m.LATENCY_BUCKETS
                        ]
                        buckets.append(("+Inf", total))
                        dur.add_metric(labels, buckets, sum_value=total * 0.8)
        yield req
        yield fb
        yield sh
        if any(p.revision for p in self.policies):
            yield info
        if self.latency:
            yield dur


def serve(
    policies: Sequence[PolicyRef],
    port: int,
    *,
    address: str = "127.0.0.1",
    per_minute: float = 60.0,
    namespace_label: str | None = None,
    latency: bool = False,
) -> None:
    registry = CollectorRegistry()
    registry.register(
        PolicyMetrics(
            policies, per_minute=per_minute, namespace_label=namespace_label, latency=latency
        )
    )
    start_http_server(port, addr=address, registry=registry)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tierguard.lab.policy_exporter")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--policies-file", type=Path, help="namespace/name per line")
    src.add_argument("--policies", help="comma-separated namespace/name list")
    parser.add_argument("--per-minute", type=float, default=60.0)
    parser.add_argument("--namespace-label", default=None)
    parser.add_argument("--latency", action="store_true", help="also a latency histogram")
    args = parser.parse_args(argv)
    lines = (
        args.policies_file.read_text().splitlines()
        if args.policies_file
        else args.policies.split(",")
    )
    serve(
        parse_policies(lines),
        args.port,
        address=args.address,
        per_minute=args.per_minute,
        namespace_label=args.namespace_label,
        latency=args.latency,
    )
    print(f"serving on http://{args.address}:{args.port}/metrics", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    raise SystemExit(main())
