"""Where the router's time goes: py-spy samples the router (pinned to core 0) while the
load generator drives it (JSON, then streaming), and the samples are folded into shares
of the router's own code, aiohttp's server and client, JSON, metrics and the classifier.

    PYTHONPATH=src python bench/router/profile.py [--duration 8] [--concurrency 16]

Needs ``py-spy`` (``pip install py-spy``) and the right to ptrace the router (root, or
``kernel.yama.ptrace_scope=0``). Prints a Markdown table per mode and writes the raw
folded stacks to ``--out-dir`` (``profile-json.txt``, ``profile-stream.txt``). ``--src``
profiles the router of another checkout (before/after).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(Path(__file__).parent)]

import yaml  # noqa: E402
from loadgen import build_request, run_sync  # noqa: E402
from run import BENCH_KEY, _pinned_fake, body  # noqa: E402
from stacks import after_answer, fold  # noqa: E402

from routerkit import build_tiny_classifier, free_port, process, router_config  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--tiny-classifier", action="store_true")
    ap.add_argument(
        "--src", type=Path, default=None, help="profile the router of this src (another checkout)"
    )
    ap.add_argument("--out-dir", type=Path, default=None, help="raw stacks (default: a temp dir)")
    args = ap.parse_args()
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    os.sched_setaffinity(0, {1})
    tmp = Path(tempfile.mkdtemp(prefix="tierguard-prof-"))
    from tierguard.classifier.runtime import default_model_path

    model_path = default_model_path()
    if args.tiny_classifier or not model_path.exists():
        model_path = build_tiny_classifier(tmp / "tiny.onnx")
    fast = {"models": {"*": {"latency_median_s": 0.0, "completion_words": 24}}}
    with _pinned_fake(tmp, fast) as fake_url:
        cfg = router_config(
            model_path,
            big_url=f"{fake_url}/v1",
            small_url=f"{fake_url}/v1",
            weight=50,
            shadow={"sampleRate": 0.0},
            observability={"decisionLog": str(tmp / "decisions.jsonl"), "reviewSampleSize": 200},
        )
        cfg["classifier"]["cacheSize"] = 0  # every request classified, as in run.py
        port = free_port()
        cfg["server"] = {"host": "127.0.0.1", "port": port}
        (tmp / "router.yaml").write_text(yaml.safe_dump(cfg))
        with process(
            ["router", "--config", str(tmp / "router.yaml")],
            f"http://127.0.0.1:{port}/readyz",
            tmp / "router.log",
            cpu=0,
            env={"PYTHONPATH": str(args.src.resolve())} if args.src else None,
        ) as proc:
            for stream in (False, True):
                reqs = [
                    build_request(
                        "127.0.0.1",
                        port,
                        "/v1/chat/completions",
                        body(stream, "auto", i),
                        {"Authorization": f"Bearer {BENCH_KEY}"},
                    )
                    for i in range(256)
                ]
                run_sync("127.0.0.1", port, reqs, args.concurrency, 2.0, 0.5)  # warm
                out = (args.out_dir or tmp) / f"profile-{'stream' if stream else 'json'}.txt"
                spy = subprocess.Popen(
                    [
                        pyspy,
                        "record",
                        "-r",
                        "250",
                        "-f",
                        "raw",
                        "-o",
                        str(out),
                        "--nonblocking",
                        "-p",
                        str(proc.pid),
                        "-d",
                        str(int(args.duration)),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(0.5)
                res = run_sync("127.0.0.1", port, reqs, args.concurrency, args.duration, 0.0)
                spy.wait()
                shares, total = fold(out)
                mode = "stream" if stream else "JSON"
                print(
                    f"\n{mode}, {args.concurrency} in flight, {res.rps:.0f} req/s, "
                    f"{total} samples (busy only)\n"
                )
                print("| where | share of busy samples |\n|---|---|")
                for name, n in shares.most_common():
                    print(f"| {name} | {100 * n / max(total, 1):.1f} % |")
                late = after_answer(out)
                print(
                    f"\nof which after the answer was written (accounting.account_soon): "
                    f"{100 * late / max(total, 1):.1f} %"
                )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
