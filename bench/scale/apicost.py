"""What one API request costs the API server: CPU-seconds per request by kind.

    PYTHONPATH=src python bench/scale/apicost.py --requests 1000 --threads 4
    PYTHONPATH=src python bench/scale/apicost.py --requests 1000 --audit off,on

Starts the project's testbed (:class:`tierguard.lab.controlplane.ControlPlane`: a real
kube-apiserver, etcd and kube-controller-manager; the controller manager runs only the
ServiceAccount and namespace controllers here, so no controller reacts to what this
script creates and every CPU-second counted is the request's own), then per request kind
sends ``--requests`` requests from ``--threads`` threads over keep-alive connections as
the admin user, and reads the API server's and etcd's CPU time (``/proc/<pid>/stat``,
utime + stime) before and after. The testbed's idle CPU over the same wall time is
subtracted. Objects are the operator's own renders (:mod:`tierguard.operator.render`) of
the scale benchmark's policy, one per request, each under a new name:

* ``ssa-*``: server-side apply (PATCH ``application/apply-patch+yaml``, fieldManager
  ``tierguard-operator``, force) creating a new object, as the operator's first apply;
* ``post-*``: a plain POST create of the same body;
* ``dryrun-*``: POST with ``dryRun=All`` (decoding, admission, validation; no etcd);
* ``ssa-noop-*``: the same server-side apply again on an existing, unchanged object;
* ``get-*``: a GET of one of them (the floor of any request).

Each audit setting has its own testbed, both up at once (``on`` is the scale benchmark's
Metadata-level policy for every request); ``--rounds`` rounds of every request kind
alternate between them, so a change in the machine's load hits every kind alike (the
CPU-seconds of a request grow somewhat on a loaded machine: compare rows of one run).
Prints a Markdown table (mean over all rounds, the median round's figure in brackets);
``--out FILE`` appends one JSON line per (audit, kind, request).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import http.client
import json
import os
import ssl
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from run import cpu_seconds  # noqa: E402

from operatorkit import policy_manifest  # noqa: E402
from tierguard.api import constants as c  # noqa: E402
from tierguard.api.policy import RoutingPolicySpec  # noqa: E402
from tierguard.api.status import RoutingPolicyStatus  # noqa: E402
from tierguard.lab.controlplane import LARGE_SERVICE_CIDR, ControlPlane  # noqa: E402
from tierguard.operator import render, rendermeta  # noqa: E402
from tierguard.operator.kube import resource_for  # noqa: E402

#: Only what the testbed needs to be ready (the default ServiceAccount); nothing that
#: would react to the Deployments, Services and PDBs created here.
KCM_ARGS = ["--controllers=serviceaccount,serviceaccount-token,namespace"]
NS = "apicost"


def spec() -> RoutingPolicySpec:
    doc = policy_manifest(
        "p", "http://big.invalid", "http://small.invalid", "http://prom.invalid", bake="1m"
    )
    return RoutingPolicySpec.model_validate(doc["spec"])


def rendered(kind: str, i: int, pad: int = 0) -> dict[str, Any]:
    """The operator's render of ``kind`` for policy ``p<i>`` (``pad`` bytes more data in
    a ConfigMap)."""
    ref = rendermeta.PolicyRef(f"p{i:05d}", NS, f"00000000-0000-0000-0000-{i:012d}")
    s = spec()
    status = RoutingPolicyStatus()
    obj = {
        "Deployment": lambda: render.deployment(ref, s, status),
        "ConfigMap": lambda: render.config_map(ref, s, status),
        "Service": lambda: render.service(ref, s),
        "PodDisruptionBudget": lambda: render.pod_disruption_budget(ref),
        "ServiceAccount": lambda: render.service_account(ref),
        "Role": lambda: render.role(ref),
    }[kind]()
    if pad:
        obj["data"]["pad"] = "x" * pad
    return obj


class Client:
    """One keep-alive HTTPS connection per thread, with a bearer token (the admin's here;
    ``bench/scale/floor.py`` uses it with the operator's)."""

    def __init__(self, server: str, ca_file: str, token: str) -> None:
        self.host, port = server.removeprefix("https://").split(":")
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=ca_file)
        self.token = token
        self.local = threading.local()

    @classmethod
    def admin(cls, cp: ControlPlane) -> Client:
        return cls(cp.server, str(cp.ca_file), cp.admin_token)

    def exchange(
        self, method: str, path: str, data: bytes | None, ctype: str = "application/json"
    ) -> tuple[int, bytes]:
        """One request with an already serialized body: (status, response body)."""
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx)
            self.local.conn = conn
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> int:
        data = None if body is None else json.dumps(body).encode()
        return self.exchange(method, path, data, ctype)[0]


def path_of(obj: dict[str, Any], named: bool) -> str:
    meta = obj["metadata"]
    return resource_for(obj).path(meta["namespace"], meta["name"] if named else None)


def make_calls(
    kind: str, n: int, client: Client, pad: int, first: int
) -> dict[str, Callable[[int], int]]:
    """The request kinds, on names from ``first`` on (never used before)."""
    ssa_q = f"?fieldManager={c.FIELD_MANAGER}&force=true"
    apply_ct = "application/apply-patch+yaml"

    def ssa(base: int) -> Callable[[int], int]:
        def call(i: int) -> int:
            obj = rendered(kind, base + i, pad)
            return client.request("PATCH", path_of(obj, True) + ssa_q, obj, apply_ct)

        return call

    def post(base: int, dry: bool = False) -> Callable[[int], int]:
        def call(i: int) -> int:
            obj = rendered(kind, base + i, pad)
            q = "?dryRun=All" if dry else f"?fieldManager={c.FIELD_MANAGER}"
            return client.request("POST", path_of(obj, False) + q, obj)

        return call

    def get(base: int) -> Callable[[int], int]:
        def call(i: int) -> int:
            return client.request("GET", path_of(rendered(kind, base + i, pad), True))

        return call

    return {
        "ssa": ssa(first),
        "post": post(first + n),
        "dryrun": post(first + 2 * n, dry=True),
        "ssa-noop": ssa(first),
        "get": get(first),
    }


def measure(
    cp: ControlPlane,
    call: Callable[[int], int],
    indexes: range,
    threads: int,
    idle_rate: tuple[float, float],
) -> dict[str, float]:
    """CPU-seconds of the API server and etcd for ``call`` on every index (idle CPU over
    the same wall time subtracted), and how many answers were not 2xx."""
    api_pid, etcd_pid = cp.apiserver.pid, cp.etcd.pid  # type: ignore[union-attr]
    assert api_pid and etcd_pid
    a0, e0, t0 = cpu_seconds(api_pid), cpu_seconds(etcd_pid), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(call, indexes))
    a1, e1, t1 = cpu_seconds(api_pid), cpu_seconds(etcd_pid), time.monotonic()
    wall = t1 - t0
    return {
        "n": len(indexes),
        "failed": sum(1 for x in codes if x >= 300),
        "wall": wall,
        "api": a1 - a0 - idle_rate[0] * wall,
        "etcd": e1 - e0 - idle_rate[1] * wall,
    }


def idle(cp: ControlPlane, seconds: float = 5.0) -> tuple[float, float]:
    api_pid, etcd_pid = cp.apiserver.pid, cp.etcd.pid  # type: ignore[union-attr]
    assert api_pid and etcd_pid
    a0, e0 = cpu_seconds(api_pid), cpu_seconds(etcd_pid)
    time.sleep(seconds)
    return (cpu_seconds(api_pid) - a0) / seconds, (cpu_seconds(etcd_pid) - e0) / seconds


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Both audit settings at once, each on its own testbed; rounds of every request kind
    alternate between them, so a change in the machine's load hits all alike."""
    settings = [s == "on" for s in args.audit.split(",")]
    rows = []
    with contextlib.ExitStack() as stack:
        beds = {}
        for audit in settings:
            cp = ControlPlane(
                service_cidr=LARGE_SERVICE_CIDR, audit=audit, controller_manager_args=KCM_ARGS
            )
            stack.enter_context(cp)
            cp.kubectl("create", "namespace", NS)
            beds[audit] = (cp, Client.admin(cp))
        time.sleep(3)
        rates = {audit: idle(cp) for audit, (cp, _) in beds.items()}
        per_round = max(1, args.requests // args.rounds)
        for kind in args.kinds.split(","):
            pads = [0, *args.pads] if kind == "ConfigMap" else [0]
            for k, pad in enumerate(pads):
                first = 3 * args.requests * k
                calls = {
                    a: make_calls(kind, args.requests, cl, pad, first)
                    for a, (_, cl) in beds.items()
                }
                sums: dict[tuple[bool, str], list[dict[str, float]]] = {}
                for r in range(args.rounds):
                    indexes = range(r * per_round, (r + 1) * per_round)
                    for name in args.calls.split(","):
                        for audit, (cp, _) in beds.items():
                            m = measure(cp, calls[audit][name], indexes, args.threads, rates[audit])
                            sums.setdefault((audit, name), []).append(m)
                for (audit, name), ms in sums.items():
                    n = sum(m["n"] for m in ms)
                    per = sorted(1000 * m["api"] / m["n"] for m in ms)
                    row = {
                        "audit": audit,
                        "kind": kind,
                        "call": name,
                        "pad": pad,
                        "requests": n,
                        "failed": sum(int(m["failed"]) for m in ms),
                        "apiserver_ms": round(1000 * sum(m["api"] for m in ms) / n, 3),
                        "apiserver_ms_median_round": round(per[len(per) // 2], 3),
                        "etcd_ms": round(1000 * sum(m["etcd"] for m in ms) / n, 3),
                        "per_s": round(n / sum(m["wall"] for m in ms), 1),
                        "load_avg": os.getloadavg()[0],
                    }
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=4, help="alternating rounds per kind")
    ap.add_argument("--audit", default="on,off", help="on, off or both (comma-separated)")
    ap.add_argument("--kinds", default="Deployment,ConfigMap,Service,PodDisruptionBudget")
    ap.add_argument("--calls", default="ssa,post,dryrun,ssa-noop,get")
    ap.add_argument("--pads", type=int, nargs="*", default=[16384], help="extra ConfigMap bytes")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = run(args)
    print("\n| audit | kind | bytes added | request | API server ms (median round) | etcd ms |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        audit = "on" if r["audit"] else "off"
        print(
            f"| {audit} | {r['kind']} | {r['pad']} | {r['call']} | {r['apiserver_ms']:.2f} "
            f"({r['apiserver_ms_median_round']:.2f}) | {r['etcd_ms']:.2f} |"
        )
    if args.out:
        with args.out.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
