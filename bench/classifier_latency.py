"""Classifier latency on CPU through the router's code path (`Classifier.classify`).

Usage::

    PYTHONPATH=src python bench/classifier_latency.py            # print the results
    PYTHONPATH=src python bench/classifier_latency.py --update docs/benchmarks.md

``--update`` rewrites only the ``## Classifier latency`` section of the file (other
sections belong to other benchmarks). Target: p99 <= 2 ms for one query.

Queries come from the generator's traffic mix (varied lengths), plus a worst case of
queries at the runtime's length cap. Timing is wall-clock ``perf_counter_ns`` around
each call, after a warm-up, with the GC left on (as in the router).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from tierguard.classifier.dataset import generate
from tierguard.classifier.runtime import MAX_QUERY_CHARS, default_model_path, load_classifier

HEADING = "## Classifier latency"
TARGET_P99_MS = 2.0


def _percentiles(samples_ns: list[int]) -> dict[str, float]:
    arr = np.array(samples_ns, dtype=np.float64) / 1e6
    return {
        "p50": float(np.percentile(arr, 50)),
        "p90": float(np.percentile(arr, 90)),
        "p99": float(np.percentile(arr, 99)),
        "max": float(arr.max()),
        "mean": float(arr.mean()),
    }


def run(n_single: int, repeats_batch: int) -> str:
    model_path = default_model_path()
    clf = load_classifier(model_path)
    texts = [e.text for e in generate(n_single, seed=2024, split="all")]
    long_texts = [(t + " ") * (MAX_QUERY_CHARS // max(1, len(t)) + 1) for t in texts[:200]]
    for t in texts[:200]:  # warm-up
        clf.classify(t)

    single: list[int] = []
    single_cpu: list[int] = []
    for t in texts:
        start_cpu = time.thread_time_ns()
        start = time.perf_counter_ns()
        clf.classify(t)
        single.append(time.perf_counter_ns() - start)
        single_cpu.append(time.thread_time_ns() - start_cpu)
    # the same model asked for the tier head only: what the category head adds per query
    tier_only_cpu: list[int] = []
    for t in texts:
        start_cpu = time.thread_time_ns()
        clf.probabilities([t])
        tier_only_cpu.append(time.thread_time_ns() - start_cpu)
    longest: list[int] = []
    for t in long_texts:
        start = time.perf_counter_ns()
        clf.classify(t)
        longest.append(time.perf_counter_ns() - start)

    batch_rows = []
    for size in (8, 32, 128):
        samples: list[int] = []
        for i in range(repeats_batch):
            chunk = [texts[(i * size + j) % len(texts)] for j in range(size)]
            start = time.perf_counter_ns()
            clf.classify_batch(chunk)
            samples.append(time.perf_counter_ns() - start)
        p = _percentiles(samples)
        batch_rows.append(
            f"| {size} | {p['p50']:.3f} | {p['p99']:.3f} | {p['p50'] / size * 1000:.1f} | "
            f"{size / (p['p50'] / 1000):,.0f} |"
        )

    s = _percentiles(single)
    c = _percentiles(single_cpu)
    t1 = _percentiles(tier_only_cpu)
    heads = f"tier and category heads ({len(clf.categories)} labels)" if clf.categories else "tier"
    lg = _percentiles(longest)
    verdict = "meets" if s["p99"] <= TARGET_P99_MS else "MISSES"
    cpu_verdict = "meets" if c["p99"] <= TARGET_P99_MS else "misses"
    mean_len = statistics.mean(len(t) for t in texts)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        HEADING,
        "",
        "Recorded by `bench/classifier_latency.py` (do not edit by hand; rerun with `--update`).",
        "It times `Classifier.classify` / `classify_batch` from `tierguard.classifier.runtime`, "
        "the router's own code path (text normalisation, one onnxruntime session, "
        "1 intra-op thread, tier rule), on the shipped default model "
        f"({model_path.stat().st_size / 1024:.0f} KiB; {heads} out of one `session.run`).",
        "",
        f"- machine: {platform.machine()} `{platform.processor() or 'cpu'}`, {os.cpu_count()} "
        f"cores, load average {load:.1f} at start (the machine is shared); Python "
        f"{platform.python_version()}, onnxruntime {ort.__version__}",
        f"- single queries: {len(texts)} generated queries (mean {mean_len:.0f} characters), "
        "one `classify` call each after 200 warm-up calls",
        f"- target: p99 <= {TARGET_P99_MS} ms for one query: wall clock **{verdict}** it "
        f"(p99 {s['p99']:.3f} ms); CPU time of the calling thread **{cpu_verdict}** it "
        f"(p99 {c['p99']:.3f} ms). onnxruntime runs on the calling thread (one intra-op "
        "thread), so CPU time is the latency on an idle core; wall clock adds the time the "
        "thread waited for a core on this shared machine.",
        "",
        "| single query | p50 ms | p90 ms | p99 ms | max ms | mean ms |",
        "|---|---|---|---|---|---|",
        f"| typical ({len(texts)} queries) | {s['p50']:.3f} | {s['p90']:.3f} | {s['p99']:.3f} | "
        f"{s['max']:.3f} | {s['mean']:.3f} |",
        f"| typical, CPU time of the thread | {c['p50']:.3f} | {c['p90']:.3f} | "
        f"{c['p99']:.3f} | {c['max']:.3f} | {c['mean']:.3f} |",
        f"| typical, CPU time, tier head only (`probabilities`) | {t1['p50']:.3f} | "
        f"{t1['p90']:.3f} | {t1['p99']:.3f} | {t1['max']:.3f} | {t1['mean']:.3f} |",
        f"| at the {MAX_QUERY_CHARS}-character cap (200 queries) | {lg['p50']:.3f} | "
        f"{lg['p90']:.3f} | {lg['p99']:.3f} | {lg['max']:.3f} | {lg['mean']:.3f} |",
        "",
        "| batch size | p50 ms per batch | p99 ms per batch | µs per query (p50) | "
        "queries/s (p50) |",
        "|---|---|---|---|---|",
        *batch_rows,
        "",
    ]
    return "\n".join(lines)


def update_section(path: Path, section: str) -> None:
    """Replace (or append) our section, leaving every other section untouched."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(HEADING)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _m: section + "\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="single queries to time")
    parser.add_argument("--batch-repeats", type=int, default=300)
    parser.add_argument("--update", type=Path, help="rewrite this file's classifier section")
    args = parser.parse_args()
    section = run(args.n, args.batch_repeats)
    print(section)
    if args.update:
        update_section(args.update, section)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
