"""The scale benchmark's analysis: the burst summary from the audit log and the tables
(``run.py --write-docs`` puts them into docs/benchmarks.md)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def burst_summary(events: list[dict[str, Any]], user: str, n: int) -> dict[str, Any]:
    """The operator's requests from the first create until all Ready: how many per policy
    by verb and resource, their API latency, and how many were in flight on average."""
    by: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    users: Counter[str] = Counter()
    latencies = []
    first = last = None
    for ev in events:
        if ev.get("verb") != "watch":
            who = ev.get("user", {}).get("username", "?")
            users["operator" if who == user else who.removeprefix("system:")] += 1
        if ev.get("user", {}).get("username") != user or ev.get("verb") == "watch":
            continue
        ref = ev.get("objectRef", {})
        sub = f"/{ref['subresource']}" if ref.get("subresource") else ""
        by[f"{ev['verb']} {ref.get('resource', '?')}{sub}"] += 1
        codes[str(ev.get("responseStatus", {}).get("code"))] += 1
        t0, t1 = _ts(ev["requestReceivedTimestamp"]), _ts(ev["stageTimestamp"])
        latencies.append(t1 - t0)
        first = t0 if first is None else min(first, t0)
        last = t1 if last is None else max(last, t1)
    if not latencies:
        return {}
    latencies.sort()
    span = (last - first) if first is not None and last is not None else 0.0
    return {
        "requests_per_policy": {k: round(v / n, 2) for k, v in sorted(by.items())},
        "requests": sum(by.values()),
        "codes": dict(codes),
        "latency_ms_mean": round(1000 * sum(latencies) / len(latencies), 1),
        "latency_ms_p90": round(1000 * latencies[int(0.9 * (len(latencies) - 1))], 1),
        "in_flight_mean": round(sum(latencies) / span, 2) if span else None,
        # Every client's requests in the same time (the API server's whole load).
        "requests_per_policy_by_user": {
            k: round(v / n, 2) for k, v in users.most_common() if v >= n / 10
        },
    }


def _f(v: Any) -> str:
    return "—" if v is None else str(v)


def _who(r: dict[str, Any]) -> str:
    """The operator column: label, extra flags, glibc's arena limit when it was set
    (rows recorded before the bench set it have no ``malloc_arenas``), and an audit log
    of the operator's requests only (``--audit-scope operator``)."""
    who = str(r["operator"]) + (" " + str(r["operator_args"]) if r.get("operator_args") else "")
    if r.get("malloc_arenas") == 0:
        who += " (arenas: glibc default)"
    if r.get("audit_scope") == "operator":
        who += " (audit: operator only)"
    return who


def table(rows: list[dict[str, Any]]) -> str:
    """The idle figures: one row per case."""
    head = (
        "| operator | policies | namespaces | all Ready (s) | load avg (start → Ready) | "
        "CPU % core | RSS MiB | API writes/min | API reads/min | Prom queries/min | "
        "max eval lag (s) | delete (s) | GC (s) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    out = []
    for r in rows:
        lag = r["max_evaluation_lag_s"]
        who = _who(r)
        out.append(
            f"| {who} | {r['policies']} | {r['namespaces']} | {_f(r['ready_s'])} | "
            f"{_f(r.get('load_before'))} → {_f(r.get('load_after'))} | "
            f"{r['cpu_pct']} | {r['rss_mib']} | {r['writes_per_min']} | {r['reads_per_min']} | "
            f"{r['prom_queries_per_min']} | {_f(None if lag is None else round(lag, 1))} | "
            f"{r['delete_s']} | {_f(r['gc_s'])} |\n"
        )
    return head + "".join(out)


def burst_table(rows: list[dict[str, Any]]) -> str:
    """Where the time to Ready went: one row per case that recorded it."""
    head = (
        "| operator | policies | namespaces | create (s) | half Ready (s) | all Ready (s) | "
        "operator requests per policy | API latency mean / p90 (ms) | in flight | "
        "CPU % of a core: API server / etcd / controller-manager / operator / machine |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    out = []
    for r in rows:
        b, cpu = r.get("burst") or {}, r.get("burst_cpu_by_process") or {}
        if not b:
            continue
        per = sum(b["requests_per_policy"].values())
        who = _who(r)
        out.append(
            f"| {who} | {r['policies']} | {r['namespaces']} | {r['create_s']} | "
            f"{_f(r.get('ready_half_s'))} | {_f(r['ready_s'])} | {per:.1f} | "
            f"{b['latency_ms_mean']} / {b['latency_ms_p90']} | {b['in_flight_mean']} | "
            f"{_f(cpu.get('kube-apiserver'))} / {_f(cpu.get('etcd'))} / "
            f"{_f(cpu.get('kube-controller-manager'))} / {_f(cpu.get('operator'))} / "
            f"{_f(cpu.get('machine_busy'))} |\n"
        )
    return head + "".join(out)


BEGIN, END = "<!-- scale:begin -->", "<!-- scale:end -->"


def write_docs(results: Path, docs: Path, since: str) -> None:
    """The tables of the rows recorded at or after ``since`` (ISO time) into ``docs``
    between the scale markers."""
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    # floor.py's rows (no operator: no idle window, no memory) have a section of their own
    rows = [r for r in rows if r.get("at", "") >= since and r.get("bench") != "floor.py"]
    rows.sort(key=lambda r: (r["operator"], r["policies"], r["namespaces"], r["at"]))
    text = docs.read_text()
    before, rest = text.split(BEGIN, 1)
    _, after = rest.split(END, 1)
    body = (
        f"\n{table(rows)}\nWhere the time to Ready went (from the first create until "
        f"all Ready; the operator's requests from the API server's audit log):\n\n"
        f"{burst_table(rows)}"
    )
    docs.write_text(before + BEGIN + body + END + after)
