"""Control-plane scale benchmark: N RoutingPolicies on one operator.

    PYTHONPATH=src python bench/scale/run.py --policies 50,200,1000 --namespaces 1,10
    PYTHONPATH=src python bench/scale/run.py --quick          # 20 policies, short windows

Per case (N policies over K namespaces) it starts the project's testbed -- a real
kube-apiserver (audit log on, a /16 Service range so every policy's Service gets a
ClusterIP), etcd, kube-controller-manager and a real Prometheus -- plus one exporter
process serving router-style metrics for every policy (so gates see data; counters are
static by default, i.e. the policies are idle: ``--per-minute`` makes them move), and the
operator under test as its own process with its least-privilege ServiceAccount, then
records:

* time from the first create until every policy is Ready;
* over a ``--window`` after ``--settle`` seconds: operator CPU (% of one core) and RSS,
  API requests per minute by verb and resource from the API server's audit log (the
  operator's ServiceAccount only), Prometheus instant queries per minute (Prometheus' own
  ``prometheus_http_requests_total``), the largest evaluation lag the operator reports;
* time to delete all policies, and until the garbage collector removed their objects.

``--operator-src DIR`` runs the operator from another checkout (e.g. a ``git worktree`` of
an older commit) for before/after figures. There are no routers (no kubelet): their
Deployments stay unavailable, as in any cluster without nodes. Results: one JSON line per
case appended to ``--out`` (default bench/scale/results.jsonl) and a Markdown table.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from noise import Noise  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402
from prometheus_client.samples import Sample  # noqa: E402
from report import burst_summary, table, write_docs  # noqa: E402

from operatorkit import install_crd, operator_identity, policy_manifest  # noqa: E402
from routerkit import free_port, wait_http  # noqa: E402
from tierguard.api import constants as c  # noqa: E402
from tierguard.api import metrics as m  # noqa: E402
from tierguard.api.policy import RoutingPolicySpec  # noqa: E402
from tierguard.lab.controlplane import (  # noqa: E402
    AUDIT_POLICY,
    LARGE_SERVICE_CIDR,
    ControlPlane,
    audit_policy_for,
)
from tierguard.lab.prometheus import Prometheus  # noqa: E402
from tierguard.operator.revision import compute_revision  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_SA = "tierguard-operator"
HOME_NS = "tierguard-system"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine so far (/proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields) - idle, sum(fields)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def scrape(url: str) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def _listed(answer: object) -> list[Any]:
    """The items of a custom-object list (the client types the answer ``object``)."""
    assert isinstance(answer, dict)
    return list(answer["items"])


def prom_queries(prom_url: str) -> float:
    samples = scrape(f"{prom_url}/metrics").get("prometheus_http_requests", [])
    return sum(
        s.value
        for s in samples
        if s.name.endswith("_total") and s.labels.get("handler") in ("/api/v1/query",)
    )


def max_lag(metrics_url: str) -> float | None:
    try:
        samples = scrape(metrics_url).get(m.EVALUATION_LAG.name, [])
    except OSError:
        return None
    return max((s.value for s in samples), default=None)


def start_profiler(path: Path, pid: int) -> subprocess.Popen[bytes]:
    """py-spy sampling the operator (all threads, idle ones too) into a speedscope file."""
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return subprocess.Popen(
        [pyspy, "record", "-p", str(pid), "-r", "50", "-f", "raw", "-o", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def probe_dump(op: subprocess.Popen[bytes], directory: Path, k: int, trim: bool = False) -> None:
    """Signal bench/scale/memprobe.py in the operator and wait for its k-th dump."""
    op.send_signal(signal.SIGUSR2 if trim else signal.SIGUSR1)
    path = directory / f"dump-{k}.json"
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.5)


def is_ready(obj: dict[str, Any]) -> bool:
    return any(
        cond.get("type") == "Ready" and cond.get("status") == "True"
        for cond in (obj.get("status") or {}).get("conditions", [])
    )


class ReadyTracker:
    """Which policies are Ready, from a watch (a LIST of 1,000 policies every second
    would load the API server the operator is being measured against)."""

    def __init__(self, custom: Any) -> None:
        self.custom = custom
        self.ready: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def count(self) -> int:
        return len(self.ready)

    def _run(self) -> None:
        from kubernetes import watch

        while not self._stop.is_set():
            listed = self.custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL)
            self.ready = {
                (it["metadata"]["namespace"], it["metadata"]["name"])
                for it in listed["items"]
                if is_ready(it)
            }
            w = watch.Watch()  # type: ignore[no-untyped-call]
            try:
                for ev in w.stream(  # type: ignore[no-untyped-call]
                    self.custom.list_cluster_custom_object,
                    c.GROUP,
                    c.VERSION,
                    c.PLURAL,
                    resource_version=listed["metadata"]["resourceVersion"],
                    timeout_seconds=60,
                ):
                    obj = ev["object"]
                    key = (obj["metadata"]["namespace"], obj["metadata"]["name"])
                    if ev["type"] != "DELETED" and is_ready(obj):
                        self.ready.add(key)
                    else:
                        self.ready.discard(key)
                    if self._stop.is_set():
                        break
            except Exception:  # an expired resourceVersion: list again
                time.sleep(0.5)
            finally:
                w.stop()  # type: ignore[no-untyped-call]


def manifest(name: str, prom_url: str) -> dict[str, Any]:
    doc = policy_manifest(
        name,
        "http://big.invalid",
        "http://small.invalid",
        prom_url,
        steps=[10, 50, 100],
        bake="1m",
        min_samples=200,
        no_data_after="1h",
        interval="1m",
    )
    doc["spec"]["rollout"]["maxStepDuration"] = "3h"
    return doc


def run_case(args: argparse.Namespace, n: int, k: int) -> dict[str, Any]:
    from kubernetes import client

    from tierguard.operator.kube import load_api_client

    result: dict[str, Any] = {"policies": n, "namespaces": k, "operator": args.label}
    if args.operator_args:
        result["operator_args"] = args.operator_args
    result["malloc_arenas"] = args.malloc_arenas
    if args.audit_scope != "all":
        result["audit_scope"] = args.audit_scope
    with ExitStack() as stack:
        kcm_args = ["--kube-api-qps=200", "--kube-api-burst=400"] if args.fast_gc else []
        audit_policy = (
            audit_policy_for([f"system:serviceaccount:{HOME_NS}:{OPERATOR_SA}"])
            if args.audit_scope == "operator"
            else AUDIT_POLICY
        )
        cp = ControlPlane(
            service_cidr=LARGE_SERVICE_CIDR,
            audit=True,
            audit_policy=audit_policy,
            controller_manager_args=kcm_args,
        ).start()
        stack.callback(cp.stop)
        prom = Prometheus(scrape_interval=args.scrape_interval).start()
        stack.callback(prom.stop)
        api = load_api_client(str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        if args.operator_src:  # that checkout's CRD: an older operator refuses newer fields
            cp.kubectl("apply", "--server-side", "-f", str(Path(args.operator_src) / "crds"))
            cp.wait_established(c.CRD_NAME)
        else:
            install_crd(cp)
        namespaces = [f"scale-{i}" for i in range(k)]
        for ns in [HOME_NS, *namespaces]:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        names = [(namespaces[i % k], f"p{i:04d}") for i in range(n)]
        noise = Noise(core, namespaces, args.noise, args.noise_rate)
        if args.noise:
            result["noise"], result["noise_rate"] = args.noise, args.noise_rate
            noise.create()
            noise.start()
            stack.callback(noise.stop)

        tmp = Path(tempfile.mkdtemp(prefix="tierguard-scale-"))
        pol_file = tmp / "policies.txt"
        # Every policy rolls out the same revision (it hashes models and classifier, not
        # the name); the exporter reports it as real routers do.
        revision = compute_revision(
            RoutingPolicySpec.model_validate(manifest("p", prom.url)["spec"])
        )
        pol_file.write_text("".join(f"{ns}/{name} {revision}\n" for ns, name in names))
        exp_port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
        exporter = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tierguard.lab.policy_exporter",
                "--port",
                str(exp_port),
                "--policies-file",
                str(pol_file),
                "--namespace-label",
                "namespace",
                "--per-minute",
                str(args.per_minute),
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        stack.callback(exporter.wait)
        stack.callback(exporter.terminate)
        wait_http(f"http://127.0.0.1:{exp_port}/metrics", exporter)
        prom.set_targets([f"127.0.0.1:{exp_port}"])

        kubeconfig = stack.enter_context(operator_identity(cp, api, HOME_NS))
        met_port = free_port()
        op_src = Path(args.operator_src).resolve() / "src" if args.operator_src else ROOT / "src"
        if args.memprobe:  # the same entry point, in-process under the memory probe
            probe = [str(Path(__file__).parent / "memprobe.py"), "--dir", str(args.memprobe)]
            entry = [*probe, *(["--tracemalloc"] if args.tracemalloc else []), "--"]
        else:
            entry = ["-m", "tierguard.cli"]
        cmd = [
            sys.executable,
            *entry,
            "operator",
            "--kubeconfig",
            str(kubeconfig),
            "--all-namespaces",
            "--standalone",
            "--namespace-label",
            "namespace",
            "--metrics-port",
            str(met_port),
            "--metrics-address",
            "127.0.0.1",
            "--log-level",
            "warning",
            *args.operator_args.split(),
        ]
        log = open(tmp / "operator.log", "wb")  # noqa: SIM115 - closed by the stack
        stack.callback(log.close)
        op_env = {**env, "PYTHONPATH": str(op_src)}
        op_env.pop("MALLOC_ARENA_MAX", None)
        if args.malloc_arenas:  # as the chart's operator container sets it
            op_env["MALLOC_ARENA_MAX"] = str(args.malloc_arenas)
        op = subprocess.Popen(cmd, env=op_env, stdout=log, stderr=subprocess.STDOUT)

        def stop_op() -> None:
            op.terminate()
            try:
                op.wait(timeout=30)
            except subprocess.TimeoutExpired:
                op.kill()
                op.wait()

        stack.callback(stop_op)
        time.sleep(3)

        _, burst_offset = cp.audit_events()
        profiler = start_profiler(args.profile, op.pid) if args.profile else None
        cpu_burst0 = cpu_seconds(op.pid)
        procs: dict[str, int | None] = {pr.name: pr.pid for pr in cp.processes}
        procs.update(
            prometheus=prom.process.pid if prom.process else None,
            exporter=exporter.pid,
            operator=op.pid,
            bench=os.getpid(),
        )
        pids = {k: v for k, v in procs.items() if v is not None}
        cpu_by0 = {k: cpu_seconds(v) for k, v in pids.items()}
        machine0 = machine_cpu()
        result["load_before"] = round(os.getloadavg()[0], 1)
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(
                pool.map(
                    lambda nn: custom.create_namespaced_custom_object(
                        c.GROUP, c.VERSION, nn[0], c.PLURAL, manifest(nn[1], prom.url)
                    ),
                    names,
                )
            )
        result["create_s"] = round(time.monotonic() - started, 1)

        tracker = ReadyTracker(custom)
        tracker.start()
        stack.callback(tracker.stop)
        deadline = started + args.ready_timeout
        ready = 0
        curve: list[tuple[float, int]] = []
        while time.monotonic() < deadline:
            ready = tracker.count()
            curve.append((time.monotonic() - started, ready))
            if ready == n:
                break
            time.sleep(0.5)
        result["ready"] = ready
        result["ready_s"] = round(time.monotonic() - started, 1) if ready == n else None
        result["ready_half_s"] = next((round(t, 1) for t, r in curve if 2 * r >= n), None)
        result["load_after"] = round(os.getloadavg()[0], 1)
        burst_s = time.monotonic() - started
        result["burst_cpu_pct"] = round(100 * (cpu_seconds(op.pid) - cpu_burst0) / burst_s, 1)
        # Where the machine's CPU went while the policies were becoming Ready (% of a core).
        share = {k: 100 * (cpu_seconds(pids[k]) - v) / burst_s for k, v in cpu_by0.items()}
        busy, total = (b - a for a, b in zip(machine0, machine_cpu(), strict=True))
        share["machine_busy"] = 100 * (os.cpu_count() or 1) * busy / total if total else 0.0
        result["burst_cpu_by_process"] = {k: round(v) for k, v in share.items()}
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(timeout=60)
        burst_events, _ = cp.audit_events(burst_offset)
        result["burst"] = burst_summary(
            burst_events, f"system:serviceaccount:{HOME_NS}:{OPERATOR_SA}", n
        )

        if args.memprobe:
            probe_dump(op, args.memprobe, 1)  # right after all Ready
        time.sleep(args.settle)
        if args.memprobe:
            probe_dump(op, args.memprobe, 2)  # after the settle
        _, offset = cp.audit_events()
        cpu0, q0, t0 = cpu_seconds(op.pid), prom_queries(prom.url), time.monotonic()
        lags = []
        while time.monotonic() - t0 < args.window:
            time.sleep(min(10.0, args.window))
            lag = max_lag(f"http://127.0.0.1:{met_port}/metrics")
            if lag is not None:
                lags.append(lag)
        minutes = (time.monotonic() - t0) / 60.0
        cpu1, q1 = cpu_seconds(op.pid), prom_queries(prom.url)
        events, _ = cp.audit_events(offset)
        user = f"system:serviceaccount:{HOME_NS}:{OPERATOR_SA}"
        by: Counter[str] = Counter()
        for ev in events:
            if ev.get("user", {}).get("username") != user:
                continue
            ref = ev.get("objectRef", {})
            sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
            by[f"{ev['verb']} {ref.get('resource', '?')}{sub}"] += 1
        writes = sum(v for k_, v in by.items() if k_.split()[0] in WRITE_VERBS)
        reads = sum(by.values()) - writes
        if args.noise:
            result.update(noise_patches=noise.updates, noise_failed=noise.failed)
        result.update(
            window_s=round(minutes * 60),
            cpu_pct=round(100 * (cpu1 - cpu0) / (minutes * 60), 1),
            rss_mib=round(rss_mib(op.pid)),
            writes_per_min=round(writes / minutes, 1),
            reads_per_min=round(reads / minutes, 1),
            requests_per_min={k_: round(v / minutes, 1) for k_, v in sorted(by.items())},
            prom_queries_per_min=round((q1 - q0) / minutes, 1),
            max_evaluation_lag_s=max(lags) if lags else None,
        )
        if args.memprobe:
            probe_dump(op, args.memprobe, 3)  # at the end of the window
            probe_dump(op, args.memprobe, 4, trim=True)  # after malloc_trim(0)
            result["rss_after_trim_mib"] = round(rss_mib(op.pid))

        started = time.monotonic()
        for ns in namespaces:
            for attempt in range(5):  # a busy API server answers a large delete with 504
                try:
                    custom.delete_collection_namespaced_custom_object(
                        c.GROUP, c.VERSION, ns, c.PLURAL
                    )
                    break
                except client.exceptions.ApiException as exc:
                    if exc.status not in (429, 500, 503, 504) or attempt == 4:
                        raise
                    time.sleep(2)
        while _listed(custom.list_cluster_custom_object(c.GROUP, c.VERSION, c.PLURAL)):
            time.sleep(1)
        result["delete_s"] = round(time.monotonic() - started, 1)
        selector = f"{c.LABEL_MANAGED_BY}={c.MANAGED_BY}"
        while time.monotonic() - started < args.gc_timeout:
            left = len(core.list_config_map_for_all_namespaces(label_selector=selector).items)
            left += len(
                client.AppsV1Api(api)
                .list_deployment_for_all_namespaces(label_selector=selector)
                .items
            )
            if not left:
                break
            time.sleep(1)
        result["gc_s"] = round(time.monotonic() - started, 1) if not left else None
        api.close()  # type: ignore[no-untyped-call]  # kubernetes: ApiClient.close is unannotated
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--policies", default="50,200,1000")
    p.add_argument("--namespaces", default="1,10")
    p.add_argument("--settle", type=float, default=150.0, help="seconds after all Ready")
    p.add_argument("--window", type=float, default=300.0, help="measurement window, seconds")
    p.add_argument("--ready-timeout", type=float, default=600.0)
    p.add_argument("--gc-timeout", type=float, default=600.0)
    p.add_argument("--scrape-interval", default="15s")
    p.add_argument("--per-minute", type=float, default=0.0, help="exporter growth (0: idle)")
    p.add_argument(
        "--operator-src", default=None, help="checkout whose operator (src/) and CRD (crds/) to run"
    )
    p.add_argument("--label", default="this", help="name of the operator in the table")
    p.add_argument("--fast-gc", action="store_true", help="kube-controller-manager QPS 200")
    p.add_argument(
        "--audit-scope",
        choices=["all", "operator"],
        default="all",
        help="audit every request (default) or only the operator's (the burst table's "
        "requests by user then shows the operator alone)",
    )
    p.add_argument(
        "--noise",
        type=int,
        default=0,
        help="ConfigMaps the operator does not own, made before it starts (bench/scale/noise.py)",
    )
    p.add_argument(
        "--noise-rate", type=float, default=0.0, help="patches of those ConfigMaps a second"
    )
    p.add_argument("--profile", type=Path, default=None, help="py-spy the operator until all Ready")
    p.add_argument("--operator-args", default="", help="extra operator flags (one string)")
    p.add_argument(
        "--malloc-arenas",
        type=int,
        default=2,
        help="MALLOC_ARENA_MAX of the operator process, as the chart sets it (0: glibc's "
        "default, 8 per core)",
    )
    p.add_argument(
        "--memprobe",
        type=Path,
        default=None,
        help="run the operator under bench/scale/memprobe.py, dumps into this directory",
    )
    p.add_argument(
        "--tracemalloc", action="store_true", help="with --memprobe: trace Python allocations"
    )
    p.add_argument("--quick", action="store_true", help="20 policies, short windows")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results.jsonl")
    p.add_argument(
        "--write-docs",
        metavar="SINCE",
        default=None,
        help="only write the tables of the --out rows recorded at or after SINCE "
        "(e.g. 2026-12-01T14:30) into docs/benchmarks.md",
    )
    args = p.parse_args()
    if args.write_docs:
        write_docs(args.out, ROOT / "docs" / "benchmarks.md", args.write_docs)
        return 0
    if args.quick:
        args.policies, args.namespaces = "20", "2"
        args.settle, args.window, args.scrape_interval = 20.0, 30.0, "5s"
    rows = []
    for n in (int(x) for x in args.policies.split(",")):
        for k in (int(x) for x in args.namespaces.split(",")):
            row = run_case(args, n, k)
            row["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            print(json.dumps(row), flush=True)
            with args.out.open("a") as out:
                out.write(json.dumps(row) + "\n")
            rows.append(row)
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
