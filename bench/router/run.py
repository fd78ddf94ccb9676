"""Router overhead benchmark: direct calls to the fake provider vs the tierguard router vs
the LiteLLM proxy, same fake provider, same load, one run.

    PYTHONPATH=src python bench/router/run.py [--duration 5] [--concurrency 1,16,64]
        [--baseline-src OLD/src] [--workers 1,2]

``--baseline-src`` also measures the router of another checkout (e.g. ``git worktree add
/tmp/base <commit>``; pass its ``src``) in the same run, right before this one, for a
before/after table. ``--workers`` measures the router with 1, 2, ... worker processes
(``tierguard router --workers N``) at the highest concurrency, each allowed both cores
(``taskset -c 0,1``, shared with the load generator and the fake provider).

Layout on a 2-core machine: the router (or LiteLLM) is pinned to core 0 (``taskset -c
0``), so its figures are per core; the fake provider and this load generator share core
1. The fake provider answers with no simulated latency, so what is measured is overhead.
"Added latency" is the target's percentile minus the direct percentile at the same
concurrency. "req/s per core" is requests served divided by the CPU seconds the target
process tree used during the measured window (exact even when the target is not
saturated); "req/s" is the raw throughput, which the load side may cap.

Results go to bench/router/results.json and a Markdown table on stdout (copied into
docs/benchmarks.md, section "Router overhead").
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(Path(__file__).parent)]

import selfreport  # noqa: E402
import yaml  # noqa: E402
from loadgen import Result, build_request, run_sync  # noqa: E402

from routerkit import (  # noqa: E402
    SIMPLE_QUERY,
    build_tiny_classifier,
    fake_provider,
    free_port,
    process,
    router_config,
)

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: sent by the load generator to every target; LiteLLM refuses to start without a
#: master key (the router and the fake provider ignore it)
BENCH_KEY = "sk-bench-" + "5f0c9a7e" * 6


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of a process and all its descendants."""
    total = 0.0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK_TCK
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = (task / "children").read_text().split()
                stack += [int(k) for k in kids]
        except (OSError, IndexError, ValueError):
            continue
    return total


def tree_rss_mib(pid: int) -> float:
    """Resident memory of a process and its descendants, MiB (shared pages counted once
    per process, so an upper bound for several workers)."""
    total = 0
    stack = [pid]
    while stack:
        p = stack.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
            for task in Path(f"/proc/{p}/task").iterdir():
                stack += [int(k) for k in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue
    return total / 1024


def body(stream: bool, model: str, i: int) -> dict[str, Any]:
    return {
        "model": model,
        "stream": stream,
        "user": f"user-{i}",
        "messages": [{"role": "user", "content": f"{SIMPLE_QUERY} number {i}"}],
    }


def measure(
    port: int,
    model: str,
    stream: bool,
    concurrency: int,
    duration: float,
    pid: int | None,
    path: str = "/v1/chat/completions",
) -> dict[str, Any]:
    reqs = [
        build_request(
            "127.0.0.1",
            port,
            path,
            body(stream, model, i),
            {"Authorization": f"Bearer {BENCH_KEY}"},
        )
        for i in range(256)
    ]
    cpu0 = tree_cpu_seconds(pid) if pid else 0.0
    t0 = time.monotonic()
    res: Result = run_sync("127.0.0.1", port, reqs, concurrency, duration, 2.0)
    wall = time.monotonic() - t0
    cpu = (tree_cpu_seconds(pid) - cpu0) if pid else 0.0
    n = len(res.latencies)
    # CPU was measured over warm-up + window; scale requests to the same span
    served_total = n * wall / res.elapsed if res.elapsed else 0
    return {
        "n": n,
        "errors": res.errors,
        "p50_ms": res.pct(0.5) * 1e3,
        "p99_ms": res.pct(0.99) * 1e3,
        "rps": res.rps,
        "cpu_s": cpu,
        "rps_per_core": (served_total / cpu) if cpu > 0 else None,
        "rss_mib": tree_rss_mib(pid) if pid else None,
    }


@contextlib.contextmanager
def litellm_proxy(tmp: Path, fake_url: str, exe: str) -> Iterator[tuple[int, int]]:
    cfg = {
        "model_list": [
            {
                "model_name": "auto",
                "litellm_params": {
                    "model": "openai/small-1",
                    "api_base": f"{fake_url}/v1",
                    "api_key": "x",
                },
            }
        ],
        "litellm_settings": {"telemetry": False},
        "general_settings": {"master_key": BENCH_KEY},
    }
    path = tmp / "litellm.yaml"
    path.write_text(yaml.safe_dump(cfg))
    port = free_port()
    import subprocess

    from routerkit import wait_http

    log = open(tmp / "litellm.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            exe,
            "--config",
            str(path),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
            "--num_workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False"},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, timeout_s=180)
        yield port, proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--concurrency", default="1,16,64")
    ap.add_argument("--skip-litellm", action="store_true")
    ap.add_argument(
        "--litellm",
        default=os.environ.get("LITELLM_BIN")
        or shutil.which("litellm")
        or "/tmp/tierguard-litellm-venv/bin/litellm",
        help="the litellm executable (installed in its own venv: LiteLLM pins "
        "openai<3, which conflicts with the project's dev extra)",
    )
    ap.add_argument(
        "--no-classifier-default",
        action="store_true",
        help="use the tiny test classifier even if the bundled model exists",
    )
    ap.add_argument(
        "--baseline-src",
        type=Path,
        default=None,
        help="also measure the router from this src directory (another checkout)",
    )
    ap.add_argument("--workers", default="", help="worker counts for the scaling table, e.g. 1,2")
    ap.add_argument(
        "--classifier-cache",
        type=int,
        default=0,
        help="the router's classifier.cacheSize (default 0: every request is classified; "
        "the load repeats 256 prompts, which a cache would answer after the first round)",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="measure every cell this many times (direct, before and router taking turns) "
        "and report the medians: on a shared machine several short repetitions beat one "
        "long one",
    )
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results.json")
    args = ap.parse_args()
    levels = [int(c) for c in args.concurrency.split(",")]
    os.sched_setaffinity(0, {1})  # this load generator lives on core 1
    tmp = Path(tempfile.mkdtemp(prefix="tierguard-bench-"))
    from tierguard.classifier.runtime import default_model_path

    model_path = default_model_path()
    if args.no_classifier_default or not model_path.exists():
        model_path = build_tiny_classifier(tmp / "tiny.onnx")
    results: dict[str, Any] = {
        "classifier": str(model_path),
        "levels": levels,
        "duration_s": args.duration,
        "runs": [],
        "loadavg_start": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "event_loop": os.environ.get("TIERGUARD_EVENT_LOOP", "uvloop"),
        "classifier_cache": args.classifier_cache,
        "repeat": args.repeat,
    }
    fast = {"models": {"*": {"latency_median_s": 0.0, "completion_words": 24}}}
    # the fake provider on core 1 (taskset via a wrapper around the routerkit helper)
    with _pinned_fake(tmp, fast) as fake_url:
        fake_port = int(fake_url.rsplit(":", 1)[1])

        def record(targets: list[tuple[str, int, str, int | None]], at: list[int]) -> None:
            """Measure ``targets`` (name, port, model, pid) at the levels ``at``: each
            cell ``--repeat`` times, the targets taking turns cell by cell (so a burst of
            load from elsewhere on the machine hits all of them alike); the medians go
            into the results, every repetition into ``reps``."""
            for _, port, model, _ in targets:
                # prime: LiteLLM's first requests take seconds (lazy initialisation)
                for stream in (False, True):
                    measure(port, model, stream, 1, 2.0, None)
            cells: dict[tuple[str, bool, int], list[dict[str, Any]]] = {}
            for _ in range(args.repeat):
                for stream in (False, True):
                    for c in at:
                        for target, port, model, pid in targets:
                            own = target in ("router", "before")
                            before = selfreport.scrape(port) if own else None
                            r = measure(port, model, stream, c, args.duration, pid)
                            if before is not None:  # what the router says it added
                                r["self_overhead_ms"] = selfreport.scrape(port).since(before)
                            r["loadavg_1m"] = os.getloadavg()[0]
                            cells.setdefault((target, stream, c), []).append(r)
                            print(json.dumps({**r, "target": target}), file=sys.stderr)
            for (target, stream, c), reps in cells.items():
                row = median_cell(reps)
                row.update(target=target, stream=stream, concurrency=c)
                results["runs"].append(row)

        cfg = router_config(
            model_path,
            big_url=f"{fake_url}/v1",
            small_url=f"{fake_url}/v1",
            weight=50,
            shadow={"sampleRate": 0.0},
            observability={"decisionLog": str(tmp / "decisions.jsonl"), "reviewSampleSize": 200},
        )
        cfg["classifier"]["cacheSize"] = args.classifier_cache
        port = free_port()
        cfg["server"] = {"host": "127.0.0.1", "port": port}
        (tmp / "router.yaml").write_text(yaml.safe_dump(cfg))
        router_cmd = ["router", "--config", str(tmp / "router.yaml")]
        ready = f"http://127.0.0.1:{port}/readyz"
        with contextlib.ExitStack() as running:
            # direct, before and after side by side, each router idle while another is
            # measured (both pinned to core 0)
            targets: list[tuple[str, int, str, int | None]] = [
                ("direct", fake_port, "small-1", None)
            ]
            if args.baseline_src is not None:
                bport = free_port()
                bcfg = {**cfg, "server": {"host": "127.0.0.1", "port": bport}}
                bcfg["observability"] = {
                    **cfg["observability"],
                    "decisionLog": str(tmp / "decisions-before.jsonl"),
                }
                (tmp / "router-before.yaml").write_text(yaml.safe_dump(bcfg))
                before_proc = running.enter_context(
                    process(
                        ["router", "--config", str(tmp / "router-before.yaml")],
                        f"http://127.0.0.1:{bport}/readyz",
                        tmp / "router-before.log",
                        cpu=0,
                        env={"PYTHONPATH": str(args.baseline_src.resolve())},
                    )
                )
                targets.append(("before", bport, "auto", before_proc.pid))
            proc = running.enter_context(process(router_cmd, ready, tmp / "router.log", cpu=0))
            targets.append(("router", port, "auto", proc.pid))
            record(targets, levels)
        for n in [int(w) for w in args.workers.split(",") if w]:
            with process(
                [*router_cmd, "--workers", str(n)],
                ready,
                tmp / f"router-workers-{n}.log",
                cpu="0,1",
            ) as proc:
                _wait_workers(tmp / f"router-workers-{n}.log", n)
                record([(f"workers-{n}", port, "auto", proc.pid)], [max(levels)])
        if not args.skip_litellm:
            with litellm_proxy(tmp, fake_url, args.litellm) as (lport, lpid):
                record([("litellm", lport, "auto", lpid)], levels)
    results["loadavg_end"] = os.getloadavg()
    args.out.write_text(json.dumps(results, indent=1))
    print(markdown(results))
    return 0


MEDIAN_FIELDS = ("p50_ms", "p99_ms", "rps", "cpu_s", "rps_per_core", "rss_mib", "loadavg_1m")


def median_cell(reps: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell from its repetitions: the median of each figure, the requests and errors
    summed, the self-reported overhead's median per phase, and every repetition's p50,
    p99, requests per CPU-second and load average under ``reps``."""
    row: dict[str, Any] = {
        "n": sum(r["n"] for r in reps),
        "errors": sum(r["errors"] for r in reps),
    }
    for key in MEDIAN_FIELDS:
        values = [r[key] for r in reps if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    own = [r["self_overhead_ms"] for r in reps if r.get("self_overhead_ms")]
    if own:
        row["self_overhead_ms"] = {k: statistics.median(o[k] for o in own) for k in own[0]}
    row["reps"] = [
        {k: r.get(k) for k in ("p50_ms", "p99_ms", "rps_per_core", "loadavg_1m")} for r in reps
    ]
    return row


def _wait_workers(log: Path, n: int) -> None:
    """Until every worker listens (the first one ready answers /readyz)."""
    if n == 1:
        return
    for _ in range(600):
        text = log.read_text()
        if all(f"worker {i}: tierguard router serving" in text for i in range(1, n + 1)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"not every worker started: {log}")


@contextlib.contextmanager
def _pinned_fake(tmp: Path, profile: dict[str, Any]) -> Iterator[str]:
    with fake_provider(tmp, "fake", profile) as url:
        # pin the fake provider (and only it) to core 1
        import subprocess

        port = url.rsplit(":", 1)[1]
        out = subprocess.run(
            ["pgrep", "-f", f"fake-provider --port {port}"], capture_output=True, text=True
        ).stdout.split()
        for pid in out:
            os.sched_setaffinity(int(pid), {1})
        yield url


def markdown(results: dict[str, Any]) -> str:
    runs = results["runs"]

    def find(target: str, stream: bool, c: int) -> dict[str, Any] | None:
        return next(
            (
                r
                for r in runs
                if (r["target"], r["stream"], r["concurrency"]) == (target, stream, c)
            ),
            None,
        )

    lines = []
    loads = [r["loadavg_1m"] for r in runs if r.get("loadavg_1m") is not None]
    if results.get("repeat", 1) > 1 and loads:
        lines += [
            f"Medians of {results['repeat']} repetitions of {results['duration_s']:g} s per "
            f"cell; 1-minute load average during the cells {min(loads):.1f}–{max(loads):.1f} "
            f"(median {statistics.median(loads):.1f}) on {results.get('cpus')} cores.",
            "",
        ]
    lines += [
        "| mode | in flight | direct p50 / p99 (ms) | router added p50 / p99 (ms) | "
        "LiteLLM added p50 / p99 (ms) | router req/s (per core) | LiteLLM req/s "
        "(per core) |",
        "|---|---|---|---|---|---|---|",
    ]
    for stream in (False, True):
        for c in results["levels"]:
            d = find("direct", stream, c)
            if d is None:
                continue
            cells = [
                ("stream" if stream else "JSON"),
                str(c),
                f"{d['p50_ms']:.2f} / {d['p99_ms']:.2f}",
            ]
            for target in ("router", "litellm"):
                t = find(target, stream, c)
                cells.append(
                    "–"
                    if t is None
                    else f"{t['p50_ms'] - d['p50_ms']:.2f} / {t['p99_ms'] - d['p99_ms']:.2f}"
                )
            for target in ("router", "litellm"):
                t = find(target, stream, c)
                per = t and t.get("rps_per_core")
                cells.append(
                    "–"
                    if t is None
                    else f"{t['rps']:.0f} ({per:.0f})"
                    if per
                    else f"{t['rps']:.0f}"
                )
            lines.append("| " + " | ".join(cells) + " |")
    if any(r["target"] == "before" for r in runs):
        lines += [
            "",
            "Before and after, same run (`--baseline-src`: the router of the baseline commit, "
            "measured just before this one, same load):",
            "",
            "| mode | in flight | before added p50 / p99 (ms) | after added p50 / p99 (ms) | "
            "before req/s (per core) | after req/s (per core) | per-core ratio | "
            "RSS before / after (MiB) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for stream in (False, True):
            for c in results["levels"]:
                d, b, a = (find(t, stream, c) for t in ("direct", "before", "router"))
                if d is None or b is None or a is None:
                    continue
                ratio = (
                    f"{a['rps_per_core'] / b['rps_per_core']:.2f}"
                    if a.get("rps_per_core") and b.get("rps_per_core")
                    else "–"
                )
                lines.append(
                    f"| {'stream' if stream else 'JSON'} | {c} | "
                    f"{b['p50_ms'] - d['p50_ms']:.2f} / {b['p99_ms'] - d['p99_ms']:.2f} | "
                    f"{a['p50_ms'] - d['p50_ms']:.2f} / {a['p99_ms'] - d['p99_ms']:.2f} | "
                    f"{b['rps']:.0f} ({b['rps_per_core'] or 0:.0f}) | "
                    f"{a['rps']:.0f} ({a['rps_per_core'] or 0:.0f}) | {ratio} | "
                    f"{b.get('rss_mib') or 0:.0f} / {a.get('rss_mib') or 0:.0f} |"
                )
    scaling = sorted(
        {r["target"] for r in runs if r["target"].startswith("workers-")},
        key=lambda t: int(t.split("-")[1]),
    )
    if scaling:
        lines += [
            "",
            "Workers (`--workers`; each setting allowed both cores, shared with the load "
            "generator and the fake provider):",
            "",
            "| workers | mode | in flight | req/s | req per CPU-second | added p50 / p99 (ms) "
            "| RSS, all processes (MiB) |",
            "|---|---|---|---|---|---|---|",
        ]
        for stream in (False, True):
            for t in scaling:
                for r in runs:
                    if r["target"] != t or r["stream"] != stream:
                        continue
                    d = find("direct", stream, r["concurrency"])
                    added = (
                        f"{r['p50_ms'] - d['p50_ms']:.2f} / {r['p99_ms'] - d['p99_ms']:.2f}"
                        if d
                        else "–"
                    )
                    lines.append(
                        f"| {t.split('-')[1]} | {'stream' if stream else 'JSON'} | "
                        f"{r['concurrency']} | {r['rps']:.0f} | "
                        f"{r['rps_per_core'] or 0:.0f} | {added} | {r.get('rss_mib') or 0:.0f} |"
                    )
    lines += [
        "",
        "Router overhead as it reports it (`tierguard_router_overhead_seconds`, mean per "
        "request) beside the added latency measured from outside:",
        "",
        "| mode | in flight | self-reported total (ms) | parse / classify / route / write "
        "(ms) | measured added p50 (ms) |",
        "|---|---|---|---|---|",
    ]
    for stream in (False, True):
        for c in results["levels"]:
            d, t = find("direct", stream, c), find("router", stream, c)
            o = t and t.get("self_overhead_ms")
            if d is None or t is None or not o:
                continue
            phases = " / ".join(f"{o[p]:.3f}" for p in ("parse", "classify", "route", "write"))
            lines.append(
                f"| {'stream' if stream else 'JSON'} | {c} | {o['total']:.3f} | {phases} | "
                f"{t['p50_ms'] - d['p50_ms']:.2f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
