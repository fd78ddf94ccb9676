"""Run the operator in-process and dump where its resident memory is, on a signal.

    PYTHONPATH=src python bench/scale/memprobe.py --dir /tmp/mem [--tracemalloc] -- \\
        operator --kubeconfig ... (the arguments of ``python -m tierguard.cli``)

The operator's real entry point (``tierguard.cli.main``) runs in the main thread. On
SIGUSR1 a probe thread writes ``<dir>/dump-<k>.json`` (and ``dump-<k>.malloc.txt``):

* ``/proc/self/smaps_rollup`` and the largest mappings of ``/proc/self/smaps`` (RSS by
  kind: files, ``[heap]`` -- glibc's main arena --, anonymous);
* glibc's ``mallinfo2()`` over all arenas: bytes the allocator holds from the system
  (``arena`` + ``hblkhd`` for mmapped chunks), in use (``uordblks``) and free but kept
  (``fordblks``), and ``malloc_info()``'s per-arena XML;
* ``sys._debugmallocstats()`` (pymalloc: arenas allocated, bytes in used blocks, free);
* a census of ``gc.get_objects()`` by type (count and ``sys.getsizeof`` bytes);
* with ``--tracemalloc`` (started after the operator's imports: they are the baseline,
  and traced they take minutes), the top allocation
  sites of live Python memory.

On SIGUSR2 it calls glibc's ``malloc_trim(0)`` (return every free page to the system),
then dumps as for SIGUSR1: the RSS that goes away is memory the allocator had freed but
kept. That last dump also says who holds the per-policy state (:func:`holders`: MiB per
owner -- kopf's kept bodies and per-object memories, the daemons' frames, the
controller's tables, the metrics); only then, since its walk leaves its own garbage in
pymalloc's arenas. ``bench/scale/run.py --memprobe DIR`` starts the operator through this module and
sends the signals (after all Ready + settle, at the end of the window, then SIGUSR2).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import signal
import sys
import threading
import time
import tracemalloc
import types
from collections import Counter
from pathlib import Path
from typing import Any

MALLINFO2_FIELDS = (
    "arena",
    "ordblks",
    "smblks",
    "hblks",
    "hblkhd",
    "usmblks",
    "fsmblks",
    "uordblks",
    "fordblks",
    "keepcost",
)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in MALLINFO2_FIELDS]


LIBC = ctypes.CDLL("libc.so.6")
LIBC.mallinfo2.restype = MallInfo2
LIBC.fopen.restype = ctypes.c_void_p
LIBC.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
LIBC.fclose.argtypes = [ctypes.c_void_p]
LIBC.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
LIBC.fflush.argtypes = [ctypes.c_void_p]
MIB = 1024 * 1024


def smaps_rollup() -> dict[str, float]:
    """MiB per field of /proc/self/smaps_rollup."""
    out = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB":
            out[key] = round(int(parts[0]) / 1024, 1)
    return out


def smaps_regions(top: int = 12) -> dict[str, Any]:
    """RSS by kind of mapping and the largest mappings (MiB)."""
    regions: list[dict[str, Any]] = []
    cur: dict[str, Any] | None = None
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and ":" not in head[0]:
            lo, hi = (int(x, 16) for x in head[0].split("-"))
            cur = {
                "range": head[0],
                "size": (hi - lo) / MIB,
                "perms": head[1],
                "name": head[5] if len(head) > 5 else "",
                "rss": 0.0,
            }
            regions.append(cur)
        elif cur is not None and line.startswith("Rss:"):
            cur["rss"] = int(head[1]) / 1024
    kinds: Counter[str] = Counter()
    for r in regions:
        name = r["name"]
        kind = "file" if name.startswith("/") else (name or "anon")
        kinds[kind] += r["rss"]
    largest = sorted(regions, key=lambda r: -r["rss"])[:top]
    return {
        "rss_by_kind": {k: round(v, 1) for k, v in kinds.most_common()},
        "anon_regions": sum(1 for r in regions if not r["name"]),
        "largest": [{**r, "size": round(r["size"], 1), "rss": round(r["rss"], 1)} for r in largest],
    }


def mallinfo() -> dict[str, float]:
    mi = LIBC.mallinfo2()
    return {name: round(getattr(mi, name) / MIB, 1) for name in MALLINFO2_FIELDS}


def write_malloc_text(path: Path) -> None:
    """sys._debugmallocstats() and malloc_info() both print from C: to this file."""
    with path.open("w") as f:
        f.write("== sys._debugmallocstats()\n")
        f.flush()
        saved = os.dup(2)
        try:
            os.dup2(f.fileno(), 2)
            sys._debugmallocstats()
            LIBC.fflush(None)
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.write("\n== malloc_info()\n")
    fp = LIBC.fopen(str(path).encode(), b"a")
    if fp:
        LIBC.malloc_info(0, fp)
        LIBC.fclose(fp)


def pymalloc_summary(text: str) -> dict[str, float]:
    """The totals of sys._debugmallocstats() (MiB; arena counts as numbers)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        num = value.strip().replace(",", "")
        if not sep or not num.isdigit():
            continue
        key = key.strip().lstrip("#").strip()
        if key.startswith("arenas"):
            out.setdefault(key, int(num))
        elif "bytes/arena" in key:
            out.setdefault("arenas MiB", round(int(num) / MIB, 1))
        elif key.startswith("bytes in") or "unused pools" in key:
            name = "unused pools" if "unused pools" in key else key
            out.setdefault(name, round(int(num) / MIB, 1))
    return out


def census(top: int = 25) -> list[tuple[str, int, float]]:
    count: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for obj in gc.get_objects():
        cls = type(obj)
        name = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
        count[name] += 1
        with contextlib.suppress(TypeError):
            size[name] += sys.getsizeof(obj)
    return [(k, v, round(size[k] / MIB, 2)) for k, v in count.most_common(top)]


def dict_shapes(top: int = 25) -> list[tuple[str, int]]:
    """Which dicts there are, by their first keys (a Kubernetes object, a PromQL sample)."""
    shapes: Counter[str] = Counter()
    for obj in gc.get_objects():
        if type(obj) is dict:
            keys = sorted(str(k)[:24] for k in list(obj)[:8])
            shapes[",".join(keys)[:120]] += 1
    return shapes.most_common(top)


_OPAQUE = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of ``root`` and everything it reaches through containers and instance
    attributes, not counting what ``seen`` already holds (ids; updated). Classes,
    modules, functions and code are not followed."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _OPAQUE):
            continue
        seen.add(id(obj))
        with contextlib.suppress(TypeError):
            total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif isinstance(obj, (str, bytes, int, float, bool)) or obj is None:
            continue
        else:
            attrs = getattr(obj, "__dict__", None)
            if isinstance(attrs, dict):
                stack.append(attrs)
            for slot in getattr(type(obj), "__slots__", ()):
                with contextlib.suppress(AttributeError, TypeError):
                    stack.append(getattr(obj, slot))
    return total


def holders() -> dict[str, Any]:
    """MiB held per known owner of per-policy state (each object counted once, for the
    first owner in this order): kopf's kept policy bodies, the rest of kopf's per-object
    memories, what the rollout daemons' frames hold, and the controller's own state."""
    seen: set[int] = set()
    out: dict[str, Any] = {}
    objs = gc.get_objects()
    memories = [o for o in objs if type(o).__name__ == "ResourceMemories"]
    items = [m for ms in memories for m in getattr(ms, "_items", {}).values()]
    bodies = [
        getattr(m.daemons_memory.live_fresh_body, "_src", None)
        for m in items
        if getattr(m.daemons_memory, "live_fresh_body", None) is not None
    ]
    out["kopf kept policy bodies"] = (len(bodies), deep_size(bodies, seen))
    out["kopf per-object memories (rest)"] = (len(items), deep_size(items, seen))
    frames = [
        o.cr_frame
        for o in objs
        if isinstance(o, types.CoroutineType)
        and o.cr_frame is not None
        and o.cr_code.co_name == "rollout_loop"
    ]
    held = [{k: v for k, v in f.f_locals.items() if k == "seen"} for f in frames]
    out["rollout daemons: seen copies"] = (sum(1 for h in held if h), deep_size(held, seen))
    handlers = sys.modules.get("tierguard.operator.handlers")
    controller = getattr(handlers, "CONTROLLER", None)
    if controller is not None:
        for name in ("applied", "shared", "_evaluated", "_versions", "_pruned"):
            out[f"controller.{name}"] = (None, deep_size(getattr(controller, name, None), seen))
        metrics = getattr(controller, "metrics", None)
        registry = getattr(metrics, "registry", None)
        out["operator metrics (registry)"] = (None, deep_size(registry, seen))
        out["operator metrics (other)"] = (None, deep_size(metrics, seen))
    tasks = [o for o in objs if isinstance(o, asyncio.Task)]
    out["asyncio tasks"] = (len(tasks), None)
    return {k: [n, None if b is None else round(b / MIB, 2)] for k, (n, b) in out.items()}


def dump(directory: Path, k: int, trimmed: bool) -> None:
    started = time.monotonic()
    out: dict[str, Any] = {"k": k, "at": time.strftime("%H:%M:%S"), "trimmed": trimmed}
    out["threads"] = threading.active_count()
    status = Path("/proc/self/status").read_text().splitlines()
    out["status"] = {
        ln.split(":")[0]: round(int(ln.split()[1]) / 1024, 1)
        for ln in status
        if ln.startswith(("VmRSS", "VmHWM", "RssAnon", "RssFile"))
    }
    out["smaps_rollup"] = smaps_rollup()
    out["smaps"] = smaps_regions()
    out["mallinfo2"] = mallinfo()
    text_path = directory / f"dump-{k}.malloc.txt"
    write_malloc_text(text_path)
    out["pymalloc"] = pymalloc_summary(text_path.read_text())
    out["gc_counts"] = gc.get_count()
    out["gc_objects"] = len(gc.get_objects())
    out["census"] = census()
    out["dict_shapes"] = dict_shapes()
    if trimmed:  # the last dump only: the walk's id set (~60 MiB) stays in pymalloc's arenas
        try:
            out["holders"] = holders()  # [count, MiB]
        except Exception as exc:  # the rest of the dump still counts
            out["holders"] = {"error": repr(exc)}
    if tracemalloc.is_tracing():
        snap = tracemalloc.take_snapshot()
        snap.dump(str(directory / f"dump-{k}.tracemalloc"))  # for grouping offline
        stats = snap.statistics("lineno")
        out["tracemalloc_total_mib"] = round(sum(s.size for s in stats) / MIB, 1)
        out["tracemalloc_traced_peak_mib"] = [
            round(x / MIB, 1) for x in tracemalloc.get_traced_memory()
        ]
        out["tracemalloc_top"] = [
            (str(s.traceback), round(s.size / MIB, 2), s.count) for s in stats[:30]
        ]
        out["tracemalloc_tracebacks"] = [
            (s.traceback.format(), round(s.size / MIB, 2), s.count)
            for s in snap.statistics("traceback")[:15]
        ]
    out["probe_s"] = round(time.monotonic() - started, 2)
    (directory / f"dump-{k}.json").write_text(json.dumps(out, indent=1))


def start_probe(directory: Path) -> None:
    wanted: list[bool] = []
    ready = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        wanted.append(signum == signal.SIGUSR2)
        ready.set()

    def loop() -> None:
        k = 0
        while True:
            ready.wait()
            ready.clear()
            while wanted:
                trim = wanted.pop(0)
                if trim:
                    LIBC.malloc_trim(0)
                k += 1
                try:
                    dump(directory, k, trim)
                except Exception as exc:  # never end the probe: say why in the dump
                    (directory / f"dump-{k}.json").write_text(json.dumps({"error": repr(exc)}))

    signal.signal(signal.SIGUSR1, on_signal)
    signal.signal(signal.SIGUSR2, on_signal)
    threading.Thread(target=loop, name="memprobe", daemon=True).start()


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dir", type=Path, required=True, help="where the dumps go")
    p.add_argument("--tracemalloc", action="store_true", help="trace Python allocations (slower)")
    p.add_argument("cli", nargs=argparse.REMAINDER, help="-- and the tierguard CLI arguments")
    args = p.parse_args()
    cli = args.cli[1:] if args.cli[:1] == ["--"] else args.cli
    args.dir.mkdir(parents=True, exist_ok=True)
    start_probe(args.dir)
    from tierguard.cli import main as cli_main

    if args.tracemalloc:
        # The imports are the baseline, not per-policy memory; traced, the kubernetes
        # client's import alone takes minutes. So import what the operator imports, then
        # trace (deep enough to see who called the JSON decoder or the copy).
        import kopf  # noqa: F401
        import kubernetes.client

        # The client imports its API classes lazily (CoreV1Api alone: ~1 s untraced).
        for name in ("CoreV1Api", "CustomObjectsApi", "CoreV1Event", "V1EventSource"):
            getattr(kubernetes.client, name)
        for name in ("V1ObjectMeta", "V1ObjectReference", "V1Status"):
            getattr(kubernetes.client, name)

        import tierguard.operator.cli
        import tierguard.operator.handlers  # noqa: F401

        tracemalloc.start(16)

    return cli_main(cli)


if __name__ == "__main__":
    raise SystemExit(main())
