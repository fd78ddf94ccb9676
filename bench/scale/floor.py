"""The testbed's floor for a burst of new policies: how soon N policies *could* all be
Ready on this machine if the operator cost nothing.

    PYTHONPATH=src python bench/scale/floor.py --policies 1000 --namespaces 1 [--workers 16]
    ... --without ServiceAccount,Role,RoleBinding [--headless]   # fewer / cheaper objects

Same testbed as ``bench/scale/run.py`` (kube-apiserver with its audit log, etcd,
kube-controller-manager with ``--fast-gc``'s QPS; no Prometheus: nothing is evaluated),
same policies created the same way (8 threads), but instead of the operator a client
makes exactly the requests the operator makes for a new policy -- the signing-key Secret,
the seven rendered objects (POST), one status write carrying ``Ready`` and one Event, as
the operator's ServiceAccount -- from ``--workers`` threads, with bodies rendered once and
serialized ahead (a name substitution per policy): no rendering, no kopf, no watch of the
owned kinds, no decision. Its time to the last ``Ready`` is what the API server, etcd and
the controller manager need for that work on this machine, a bound no operator beats;
``run.py``'s time to all Ready minus this is what the operator adds. ``--without`` and
``--headless`` measure what rendering fewer or cheaper objects per policy would buy.

The status written carries only ``Ready`` and the phase (the operator's first status also
holds the tiers' steps and gates: a larger object to validate and store), so the floor is
if anything a little low.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import queue
import sys
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any, cast

sys.path[:0] = [str(Path(__file__).resolve().parents[2] / "src")]
from apicost import Client  # noqa: E402
from run import HOME_NS, cpu_seconds, machine_cpu, manifest  # noqa: E402

from operatorkit import install_crd, operator_identity  # noqa: E402
from tierguard.api import constants as c  # noqa: E402
from tierguard.api.policy import RoutingPolicySpec  # noqa: E402
from tierguard.api.status import RoutingPolicyStatus  # noqa: E402
from tierguard.lab.controlplane import (  # noqa: E402
    AUDIT_POLICY,
    LARGE_SERVICE_CIDR,
    ControlPlane,
)
from tierguard.operator import judgepromptcontent as jpc  # noqa: E402
from tierguard.operator import render  # noqa: E402
from tierguard.operator.kube import load_api_client  # noqa: E402
from tierguard.operator.kuberesources import resource_for  # noqa: E402
from tierguard.operator.render_routerconfig import GENERATED_SIGNING_KEY  # noqa: E402
from tierguard.operator.rendermeta import PolicyRef  # noqa: E402

#: Stand-ins substituted per policy in the pre-serialized bodies.
NAME, UID = "pzzzz", "00000000-0000-0000-0000-00000000zzzz"


def templates(
    namespace: str, without: frozenset[str] = frozenset(), headless: bool = False
) -> list[tuple[str, str, bytes]]:
    """(method, path, body) of a new policy's Secret and seven objects, rendered once;
    ``without`` leaves out kinds and ``headless`` gives the Service no ClusterIP: what
    rendering fewer or cheaper objects would buy."""
    ref = PolicyRef(NAME, namespace, UID)
    spec = RoutingPolicySpec.model_validate(manifest(NAME, "http://prom.invalid")["spec"])
    objs = [render.signing_secret(ref)]
    objs[0]["stringData"] = {GENERATED_SIGNING_KEY: "k" * 64}
    objs += render.render_all(ref, spec, RoutingPolicyStatus(), judge_prompt=jpc.BUILTIN)
    objs = [o for o in objs if o["kind"] not in without]
    for o in objs:
        if headless and o["kind"] == "Service":
            o["spec"]["clusterIP"] = "None"
        if "ServiceAccount" in without and o["kind"] == "Deployment":
            # the namespace's own account: a Pod naming a missing one is refused
            o["spec"]["template"]["spec"]["serviceAccountName"] = "default"
    query = f"?fieldManager={c.FIELD_MANAGER}"
    return [("POST", resource_for(o).path(namespace) + query, json.dumps(o).encode()) for o in objs]


def operator_client(api: Any) -> Client:
    """Raw HTTPS with the operator's token: as little client CPU per request as Python
    allows (pre-serialized bodies, one keep-alive connection per worker thread)."""
    cfg = api.configuration
    auth = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
    token = str(auth).removeprefix("Bearer").strip()
    return Client(cfg.host, cfg.ssl_ca_cert, token)


def call(client: Client, method: str, path: str, body: bytes) -> None:
    status, data = client.exchange(method, path, body)
    if status >= 300:
        raise RuntimeError(f"{method} {path}: {status} {data[:300]!r}")


def first_requests(
    client: Client, plan: list[tuple[str, str, bytes]], policy: dict[str, Any]
) -> None:
    """The operator's ten requests for one new policy."""
    meta = policy["metadata"]
    name, ns, uid = meta["name"], meta["namespace"], meta["uid"]
    for method, path, body in plan:
        call(
            client,
            method,
            path.replace(NAME, name),
            body.replace(NAME.encode(), name.encode()).replace(UID.encode(), uid.encode()),
        )
    status = {
        "phase": "Progressing",
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "router objects applied",
                "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "observedGeneration": 1,
            }
        ],
    }
    obj = {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name, "namespace": ns, "resourceVersion": meta["resourceVersion"]},
        "spec": policy["spec"],
        "status": status,
    }
    base = f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{ns}/{c.PLURAL}/{name}"
    call(client, "PUT", base + "/status", json.dumps(obj).encode())
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{name}.{uuid.uuid4().hex[:16]}", "namespace": ns},
        "involvedObject": {
            "apiVersion": c.API_VERSION,
            "kind": c.KIND,
            "name": name,
            "namespace": ns,
            "uid": uid,
        },
        "reason": "StepAdvanced",
        "message": "canary started",
        "type": "Normal",
        "source": {"component": c.FIELD_MANAGER},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    call(client, "POST", f"/api/v1/namespaces/{ns}/events", json.dumps(event).encode())


def grant_escalate(api: Any) -> None:
    """``escalate`` and ``bind`` on Roles for the operator's ServiceAccount (the chart does
    not grant them): to see what the API server's escalation checks cost."""
    from kubernetes import client

    from kubemodels import as_model

    rbac = client.RbacAuthorizationV1Api(api)
    group = "rbac.authorization.k8s.io"
    role = {
        "metadata": {"name": "floor-escalate"},
        "rules": [{"apiGroups": [group], "resources": ["roles"], "verbs": ["escalate", "bind"]}],
    }
    binding = {
        "metadata": {"name": "floor-escalate"},
        "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": "floor-escalate"},
        "subjects": [
            {"kind": "ServiceAccount", "name": "tierguard-operator", "namespace": HOME_NS}
        ],
    }
    rbac.create_cluster_role(as_model(client.V1ClusterRole, role))
    rbac.create_cluster_role_binding(as_model(client.V1ClusterRoleBinding, binding))


def run_floor(
    n: int, k: int, workers: int, without: frozenset[str], headless: bool, escalate: bool
) -> dict[str, Any]:
    from kubernetes import client

    label = "floor" + "".join(f" -{kind}" for kind in sorted(without))
    label += " headless" if headless else ""
    label += " escalate" if escalate else ""
    result: dict[str, Any] = {"policies": n, "namespaces": k, "operator": label}
    result["bench"] = "floor.py"
    with ExitStack() as stack:
        cp = ControlPlane(
            service_cidr=LARGE_SERVICE_CIDR,
            audit=True,
            audit_policy=AUDIT_POLICY,
            controller_manager_args=["--kube-api-qps=200", "--kube-api-burst=400"],
        ).start()
        stack.callback(cp.stop)
        api = load_api_client(str(cp.kubeconfig))
        core = client.CoreV1Api(api)
        custom = client.CustomObjectsApi(api)
        install_crd(cp)
        namespaces = [f"scale-{i}" for i in range(k)]
        for ns in [HOME_NS, *namespaces]:
            core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
        kubeconfig = stack.enter_context(operator_identity(cp, api, HOME_NS))
        if escalate:  # the API server then skips its escalation checks for Roles/bindings
            grant_escalate(api)
        op = operator_client(load_api_client(str(kubeconfig)))
        plans = {ns: templates(ns, without, headless) for ns in namespaces}
        names = [(namespaces[i % k], f"p{i:04d}") for i in range(n)]
        todo: queue.Queue[dict[str, Any] | None] = queue.Queue()
        done: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()

        def worker() -> None:
            while (policy := todo.get()) is not None:
                try:
                    first_requests(op, plans[policy["metadata"]["namespace"]], policy)
                    with lock:
                        done.append(time.monotonic())
                except Exception as exc:
                    errors.append(str(exc)[:300])

        threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
        for t in threads:
            t.start()
        pids = {pr.name: pr.pid for pr in cp.processes if pr.pid is not None}
        pids["client"] = os.getpid()
        cpu0 = {p: cpu_seconds(pid) for p, pid in pids.items()}
        machine0 = machine_cpu()
        started = time.monotonic()

        def create(nn: tuple[str, str]) -> None:
            body = custom.create_namespaced_custom_object(
                c.GROUP, c.VERSION, nn[0], c.PLURAL, manifest(nn[1], "http://prom.invalid")
            )
            todo.put(cast(dict[str, Any], body))

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(create, names))
        result["create_s"] = round(time.monotonic() - started, 1)
        for _ in threads:
            todo.put(None)
        for t in threads:
            t.join()
        if errors:
            raise SystemExit(f"{len(errors)} policies failed, e.g. {errors[0]}")
        burst = max(done) - started
        result["ready"] = len(done)
        result["ready_s"] = round(burst, 1)
        done.sort()
        result["ready_half_s"] = (
            round(done[n // 2 - 1] - started, 1) if len(done) >= n // 2 else None
        )
        share = {p: round(100 * (cpu_seconds(pid) - cpu0[p]) / burst) for p, pid in pids.items()}
        busy, total = (b - a for a, b in zip(machine0, machine_cpu(), strict=True))
        share["machine_busy"] = round(100 * (os.cpu_count() or 1) * busy / total) if total else 0
        result["burst_cpu_by_process"] = share
        result["errors"] = errors[:5]
        result["workers"] = workers
        result["load_after"] = round(os.getloadavg()[0], 1)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--policies", type=int, default=1000)
    p.add_argument("--namespaces", type=int, default=1)
    p.add_argument("--workers", type=int, default=16, help="the operator's default --workers")
    p.add_argument("--without", default="", help="kinds to leave out, e.g. Role,RoleBinding")
    p.add_argument("--headless", action="store_true", help="a Service without a ClusterIP")
    p.add_argument(
        "--escalate", action="store_true", help="grant the operator escalate/bind on Roles"
    )
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results.jsonl")
    args = p.parse_args()
    without = frozenset(k for k in args.without.split(",") if k)
    row = run_floor(
        args.policies, args.namespaces, args.workers, without, args.headless, args.escalate
    )
    row["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(json.dumps(row), flush=True)
    with args.out.open("a") as out:
        out.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
