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

Each audit setting starts a fresh testbed (``--audit on`` is the scale benchmark's
Metadata-level policy for every request). Prints a Markdown table; ``--out FILE``
appends one JSON line per (audit, kind).
"""

from __future__ import annotations

import argparse
import concurrent.futures
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

from operatorkit import policy_manifest  # noqa: E402
from tierguard.api import constants as c  # noqa: E402
from tierguard.api.policy import RoutingPolicySpec  # noqa: E402
from tierguard.api.status import RoutingPolicyStatus  # noqa: E402
from tierguard.lab.controlplane import LARGE_SERVICE_CIDR, ControlPlane  # noqa: E402
from tierguard.operator import render  # noqa: E402
from tierguard.operator.kube import resource_for  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
#: Only what the testbed needs to be ready (the default ServiceAccount); nothing that
#: would react to the Deployments, Services and PDBs created here.
KCM_ARGS = ["--controllers=serviceaccount,serviceaccount-token,namespace"]
NS = "apicost"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def spec() -> RoutingPolicySpec:
    doc = policy_manifest(
        "p", "http://big.invalid", "http://small.invalid", "http://prom.invalid", bake="1m"
    )
    return RoutingPolicySpec.model_validate(doc["spec"])


def rendered(kind: str, i: int, pad: int = 0) -> dict[str, Any]:
    """The operator's render of ``kind`` for policy ``p<i>`` (``pad`` bytes more data in
    a ConfigMap)."""
    ref = render.PolicyRef(f"p{i:05d}", NS, f"00000000-0000-0000-0000-{i:012d}")
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
    """One keep-alive HTTPS connection per thread, admin bearer token."""

    def __init__(self, cp: ControlPlane) -> None:
        self.host, port = cp.server.removeprefix("https://").split(":")
        self.port = int(port)
        self.ctx = ssl.create_default_context(cafile=str(cp.ca_file))
        self.token = cp.admin_token
        self.local = threading.local()

    def request(
        self, method: str, path: str, body: Any = None, ctype: str = "application/json"
    ) -> int:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx)
            self.local.conn = conn
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = ctype
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        resp.read()
        return resp.status


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
    n: int,
    threads: int,
    idle_rate: tuple[float, float],
) -> dict[str, Any]:
    api_pid, etcd_pid = cp.apiserver.pid, cp.etcd.pid  # type: ignore[union-attr]
    assert api_pid and etcd_pid
    a0, e0, t0 = cpu_seconds(api_pid), cpu_seconds(etcd_pid), time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        codes = list(pool.map(call, range(n)))
    a1, e1, t1 = cpu_seconds(api_pid), cpu_seconds(etcd_pid), time.monotonic()
    wall = t1 - t0
    bad = [x for x in codes if x >= 300]
    return {
        "requests": n,
        "failed": len(bad),
        "codes": sorted(set(codes)),
        "wall_s": round(wall, 2),
        "apiserver_ms": round(1000 * (a1 - a0 - idle_rate[0] * wall) / n, 3),
        "etcd_ms": round(1000 * (e1 - e0 - idle_rate[1] * wall) / n, 3),
        "per_s": round(n / wall, 1),
    }


def idle(cp: ControlPlane, seconds: float = 5.0) -> tuple[float, float]:
    api_pid, etcd_pid = cp.apiserver.pid, cp.etcd.pid  # type: ignore[union-attr]
    assert api_pid and etcd_pid
    a0, e0 = cpu_seconds(api_pid), cpu_seconds(etcd_pid)
    time.sleep(seconds)
    return (cpu_seconds(api_pid) - a0) / seconds, (cpu_seconds(etcd_pid) - e0) / seconds


def run(audit: bool, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    with ControlPlane(
        service_cidr=LARGE_SERVICE_CIDR, audit=audit, controller_manager_args=KCM_ARGS
    ) as cp:
        cp.kubectl("create", "namespace", NS)
        client = Client(cp)
        time.sleep(3)
        rate = idle(cp)
        for kind in args.kinds.split(","):
            pads = [0, *args.pads] if kind == "ConfigMap" else [0]
            for k, pad in enumerate(pads):
                calls = make_calls(kind, args.requests, client, pad, 3 * args.requests * k)
                for name in args.calls.split(","):
                    row = measure(cp, calls[name], args.requests, args.threads, rate)
                    row |= {"audit": audit, "kind": kind, "call": name, "pad": pad}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--audit", default="on,off", help="on, off or both (comma-separated)")
    ap.add_argument("--kinds", default="Deployment,ConfigMap,Service,PodDisruptionBudget")
    ap.add_argument("--calls", default="ssa,post,dryrun,ssa-noop,get")
    ap.add_argument("--pads", type=int, nargs="*", default=[16384], help="extra ConfigMap bytes")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    rows = []
    for setting in args.audit.split(","):
        rows += run(setting == "on", args)
    print("\n| audit | kind | bytes added | request | API server CPU ms | etcd CPU ms | req/s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        audit = "on" if r["audit"] else "off"
        print(
            f"| {audit} | {r['kind']} | {r['pad']} | {r['call']} | {r['apiserver_ms']:.2f} "
            f"| {r['etcd_ms']:.2f} | {r['per_s']:.0f} |"
        )
    if args.out:
        with args.out.open("a") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
