"""Starts, watches and stops everything one lab run needs.

Order of start-up (each step waits until its part is ready, and a part that fails to
become ready stops the run with the tail of its log):

1. the real control plane (etcd, kube-apiserver, kube-controller-manager) from
   :mod:`tierguard.lab.controlplane`, the RoutingPolicy CRD generated from the API models,
   the lab namespace and a Secret with the (fake) provider API keys;
2. a real Prometheus (:mod:`tierguard.lab.prometheus`) scraping every second;
3. the fake providers (``tierguard fake-provider``): cheap and capable with the
   scenario's profiles, and the pairwise judge (:mod:`tierguard.lab.judge`);
4. the operator (``tierguard operator``) as a subprocess;
5. the policy (``kubectl apply``), then the routers: the operator renders a Deployment;
   the lab runs its pod template as local processes (:mod:`tierguard.lab.pods`) and adds
   their ``/metrics`` to Prometheus' targets;
6. the simulated users (:mod:`tierguard.lab.traffic`), while the monitor loop reads the
   RoutingPolicy's status through the API, Prometheus' cost counters and the users'
   tally, draws the live view, fires the scenario's events, and records samples for
   the report.

Teardown runs in reverse order on every exit path, Ctrl-C included; each process runs in
its own process group and :mod:`tierguard.lab.processes` also kills leftovers if the
lab itself is killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tierguard.api import constants as c
from tierguard.api.crdgen import build_crd
from tierguard.api.enums import Phase
from tierguard.api.resource import RoutingPolicy
from tierguard.lab import judge as lab_judge
from tierguard.lab import scenarios as sc
from tierguard.lab.live import CostFigures, LiveView, Snapshot
from tierguard.lab.pods import LocalPod, local_pods, mount_script, unshare_prefix
from tierguard.lab.processes import (
    LabError,
    ManagedProcess,
    free_port,
    keep_dir_if_we_die,
    remove_dir_if_we_die,
)
from tierguard.lab.report import RunRecord, Sample
from tierguard.lab.traffic import STAGE_SETTLING, TrafficGenerator

TERMINAL_PHASES = {Phase.PROMOTED.value, Phase.ROLLED_BACK.value, Phase.FAILED.value}
#: after a terminal phase, keep traffic flowing this long so the last weights show
SETTLE_S = 4.0
#: a Paused phase that lasts this long ends the run (a person would have to act)
PAUSED_GIVE_UP_S = 45.0
SAMPLE_EVERY_S = 2.0
#: seconds after a weight change during which arm moves are the rollout, not a stickiness bug
STAGE_SETTLE_S = 4.0
#: after promotion, keep measuring this long so the report has the steady-state saving
PROMOTED_MEASURE_S = 15.0


class LabRunError(LabError):
    """The run could not be carried out (a part failed, or the rollout never ended)."""


@dataclass
class LabSettings:
    """Knobs of one lab session (the CLI fills them)."""

    out_dir: Path
    replicas: int = 2
    requests_per_second: float | None = None
    keep_workdirs: bool = False
    namespace: str = sc.NAMESPACE


@dataclass
class _Clock:
    started: float = field(default_factory=time.monotonic)

    def __call__(self) -> float:
        return time.monotonic() - self.started


def _http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 3.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def _http_ok(url: str, timeout: float = 3.0) -> bool:
    """True when ``url`` answers 200 (anything else, or no answer, means "not yet")."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return int(resp.status) == 200


PEERING_NAME = "tierguard"


def kopf_peering_crds() -> list[dict[str, Any]]:
    """kopf's peering CRDs (group kopf.dev), as the Helm chart installs them.

    The operator coordinates its replicas through a kopf peering object, as the chart's
    default (``operator.peering.enabled``) has it; the lab runs it the same way.
    """
    out = []
    for scope, kind, plural in (
        ("Cluster", "ClusterKopfPeering", "clusterkopfpeerings"),
        ("Namespaced", "KopfPeering", "kopfpeerings"),
    ):
        out.append(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": f"{plural}.kopf.dev"},
                "spec": {
                    "group": "kopf.dev",
                    "scope": scope,
                    "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "properties": {
                                        "status": {
                                            "type": "object",
                                            "x-kubernetes-preserve-unknown-fields": True,
                                        }
                                    },
                                }
                            },
                        }
                    ],
                },
            }
        )
    return out


def due_events(
    events: Sequence[sc.Event], reached: Mapping[int, float], fired: set[int], now: float
) -> list[int]:
    """Indexes of the scenario events to fire now (pure): each fires once, ``after_s``
    after the rollout first reached its step."""
    return [
        i
        for i, ev in enumerate(events)
        if i not in fired and ev.at_step in reached and now >= reached[ev.at_step] + ev.after_s
    ]


class Lab:
    """One lab session: infrastructure started once, then one or more rollouts.

    Use as a context manager; :meth:`run` performs one scenario and returns its record.
    ``self.kube`` (a kubernetes ``ApiClient``) and :meth:`policy_body` let tests read the
    RoutingPolicy's status through the API, as an SRE would.
    """

    def __init__(self, settings: LabSettings, view: LiveView | None = None) -> None:
        self.settings = settings
        self.view = view or LiveView()
        self.logs = settings.out_dir / "logs"
        self.cp: Any = None  # ControlPlane
        self.prom: Any = None  # Prometheus
        self.kube: Any = None  # kubernetes.client.ApiClient
        self.providers: dict[str, ManagedProcess] = {}
        self.provider_urls: dict[str, str] = {}
        self.operator: ManagedProcess | None = None
        self.routers: list[tuple[LocalPod, ManagedProcess]] = []
        self._pods_dir: Path | None = None
        self.api_keys = {
            name: secrets.token_urlsafe(16) for name in (sc.CHEAP, sc.CAPABLE, lab_judge.JUDGE)
        }
        self.notes: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _say(self, text: str) -> None:
        self.view.message(f"[lab] {text}")

    def start(self) -> None:
        """Control plane, CRD, namespace, Secret, Prometheus (providers start per run)."""
        from kubernetes import config as kconfig

        from tierguard.lab.controlplane import ControlPlane, ensure_binaries
        from tierguard.lab.prometheus import Prometheus

        self.logs.mkdir(parents=True, exist_ok=True)
        self._say("control plane: etcd, kube-apiserver, kube-controller-manager (real binaries)")
        self.cp = ControlPlane(
            ensure_binaries(progress=sys.stderr), keep_workdir=self.settings.keep_workdirs
        ).start()
        self.kube = kconfig.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.cp.kubeconfig)
        )
        self._say("CRD routingpolicies.tierguard.io (generated from the API models)")
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(build_crd()))
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(kopf_peering_crds()))
        self.cp.wait_established(
            c.CRD_NAME, "kopfpeerings.kopf.dev", "clusterkopfpeerings.kopf.dev"
        )
        ns = self.settings.namespace
        self.cp.kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
        )
        self._create_peering(ns)
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "lab-provider-keys", "namespace": ns},
            "type": "Opaque",
            "stringData": dict(self.api_keys),
        }
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(secret))
        self._say("Prometheus (scrape interval 1s)")
        self.prom = Prometheus(scrape_interval="1s", keep_workdir=self.settings.keep_workdirs)
        self.prom.start()

    def _create_peering(self, ns: str) -> None:
        """The KopfPeering object the operator's replicas announce themselves in (through
        the API client: kubectl's discovery cache may not know the fresh CRD yet)."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        body = {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": PEERING_NAME, "namespace": ns},
        }
        api = client.CustomObjectsApi(self.kube)
        try:
            api.create_namespaced_custom_object("kopf.dev", "v1", ns, "kopfpeerings", body)
        except ApiException as exc:
            if exc.status != 409:
                raise LabRunError(
                    f"cannot create the KopfPeering {ns}/{PEERING_NAME}: {exc}"
                ) from exc

    def stop(self) -> None:
        """Stop everything this lab started, newest first; never raises."""
        self.stop_routers()
        for proc in [self.operator, *self.providers.values()]:
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        self.operator = None
        self.providers = {}
        if self.prom is not None:
            with contextlib.suppress(Exception):
                self.prom.stop()
            self.prom = None
        if self.kube is not None:
            with contextlib.suppress(Exception):
                self.kube.close()
            self.kube = None
        if self.cp is not None:
            with contextlib.suppress(Exception):
                self.cp.stop()
            self.cp = None

    # ------------------------------------------------------------------ parts

    def _python(self) -> list[str]:
        return [sys.executable, "-m", "tierguard.cli"]

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        return env

    def start_providers(self, scenario: sc.Scenario) -> None:
        """The cheap and capable fake providers with the scenario's profiles, and the
        judge (started once per session)."""
        for profile in (scenario.cheap, scenario.capable):
            self._start_fake(
                profile.name, sc.fake_provider_profile(profile, seed=scenario.traffic.seed)
            )
        self.start_judge()

    def start_judge(self) -> str:
        """The lab's pairwise judge (a fake provider in judge mode, :mod:`lab.judge`),
        unless it runs already; returns its base URL (add ``/v1`` for the policy)."""
        proc = self.providers.get(lab_judge.JUDGE)
        if proc is None or not proc.running():
            self._start_fake(lab_judge.JUDGE, lab_judge.judge_fake_profile())
        return self.provider_urls[lab_judge.JUDGE]

    def _start_fake(self, name: str, profile: Mapping[str, Any]) -> None:
        """(Re)start the fake provider ``name`` with ``profile`` (fake provider format)."""
        old = self.providers.pop(name, None)
        if old is not None:
            old.stop()
        path = self.settings.out_dir / f"fake-{name}.json"
        path.write_text(json.dumps(profile))
        port = free_port()
        proc = ManagedProcess(
            f"fake provider {name}",
            [
                *self._python(),
                "fake-provider",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--profile",
                str(path),
            ],
            self.logs / f"fake-{name}.log",
            env=self._child_env(),
        ).start()
        url = f"http://127.0.0.1:{port}"
        proc.wait_ready(lambda u=url: _http_ok(f"{u}/v1/models"), 60)  # type: ignore[misc]
        self.providers[name] = proc
        self.provider_urls[name] = url

    def set_provider_profile(self, name: str, profile: sc.ProviderProfile) -> None:
        """Change a running fake provider's behaviour (outage injection)."""
        _http_json(
            f"{self.provider_urls[name]}/admin/profile",
            method="PUT",
            body=sc.fake_provider_profile(profile),
        )

    def start_operator(self) -> None:
        """The operator, watching the lab namespace."""
        if self.operator is not None and self.operator.running():
            return
        kubeconfig = self.operator_kubeconfig()
        self.operator = ManagedProcess(
            "operator",
            [
                *self._python(),
                "operator",
                "--kubeconfig",
                str(kubeconfig),
                "--namespace",
                self.settings.namespace,
                "--peering-name",
                PEERING_NAME,
            ],
            self.logs / "operator.log",
            # also as $KUBECONFIG: kopf's login reads the client library's default location
            env={**self._child_env(), "KUBECONFIG": str(kubeconfig)},
        ).start()

    def operator_kubeconfig(self) -> Path:
        """Least privilege: a ServiceAccount bound to the operator's own RBAC rules
        (:mod:`tierguard.operator.rbac`, the rules the Helm chart installs)."""
        from tierguard.operator import rbac

        ns, sa = self.settings.namespace, "tierguard-operator"
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": sa, "namespace": ns},
        }
        docs = [account, rbac.cluster_role(), rbac.cluster_role_binding(sa, ns)]
        self.cp.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))
        note = (
            f"The operator ran as ServiceAccount {ns}/{sa}, bound to its least-privilege "
            "ClusterRole (tierguard.operator.rbac), not as cluster-admin."
        )
        if note not in self.notes:
            self.notes.append(note)
        # the token stays in the control plane's private workdir, never in lab-output
        return Path(self.cp.service_account_kubeconfig(ns, sa, duration="2h"))

    # ------------------------------------------------------------------ policy and routers

    def policy_manifest(self, scenario: sc.Scenario, name: str) -> dict[str, Any]:
        body = sc.lab_policy(
            scenario,
            cheap_url=f"{self.provider_urls[sc.CHEAP]}/v1",
            capable_url=f"{self.provider_urls[sc.CAPABLE]}/v1",
            judge_url=f"{self.start_judge()}/v1",
            prometheus_url=self.prom.url,
            name=name,
            namespace=self.settings.namespace,
            replicas=self.settings.replicas,
        )
        RoutingPolicy.from_k8s(body)  # refuse a bad manifest before the API server does
        return body

    def policy_body(self, name: str) -> dict[str, Any]:
        """The RoutingPolicy as the API server has it (spec and status)."""
        from kubernetes import client

        api = client.CustomObjectsApi(self.kube)
        body: Any = api.get_namespaced_custom_object(
            c.GROUP, c.VERSION, self.settings.namespace, c.PLURAL, name
        )
        out: dict[str, Any] = dict(body)
        return out

    def delete_policy(self, name: str) -> None:
        self.cp.kubectl(
            "delete", c.PLURAL, name, "-n", self.settings.namespace, "--ignore-not-found",
            "--wait=true", "--timeout=60s", check=False,
        )  # fmt: skip

    def _wait(self, what: str, probe: Callable[[], Any], timeout: float) -> Any:
        """Poll ``probe`` while the operator lives; fail with its log tail otherwise."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.operator is not None and not self.operator.running():
                raise LabRunError(
                    f"the operator exited (code {self.operator.returncode}) while waiting for "
                    f"{what}\n--- operator log ---\n{self.operator.log_tail()}"
                )
            try:
                value = probe()
                if value:
                    return value
            except Exception as exc:  # not there yet
                last = exc
            time.sleep(0.5)
        tail = self.operator.log_tail() if self.operator is not None else ""
        raise LabRunError(
            f"timed out after {timeout:.0f}s waiting for {what}"
            + (f" (last error: {last})" if last else "")
            + f"\n--- operator log ---\n{tail}"
        )

    def rendered_deployment(self, policy: str) -> dict[str, Any]:
        """The router Deployment the operator rendered for ``policy``."""
        from kubernetes import client

        apps = client.AppsV1Api(self.kube)
        selector = f"{c.LABEL_POLICY}={policy}"

        def probe() -> dict[str, Any] | None:
            items = apps.list_namespaced_deployment(
                self.settings.namespace, label_selector=selector
            ).items
            if not items:
                return None
            out: dict[str, Any] = self.kube.sanitize_for_serialization(items[0])
            return out

        deployment: dict[str, Any] = self._wait(
            f"the operator to render a Deployment labelled {selector}", probe, 90
        )
        return deployment

    def _namespace_objects(self, kind: str) -> dict[str, dict[str, Any]]:
        from kubernetes import client

        core = client.CoreV1Api(self.kube)
        ns = self.settings.namespace
        items = (
            core.list_namespaced_secret(ns).items
            if kind == "Secret"
            else core.list_namespaced_config_map(ns).items
        )
        out: dict[str, dict[str, Any]] = {}
        for item in items:
            body = self.kube.sanitize_for_serialization(item)
            out[str(body["metadata"]["name"])] = body
        return out

    def start_routers(self, policy: str) -> None:
        """Run the Deployment's pod template as local processes; scrape them."""
        self.stop_routers()
        deployment = self.rendered_deployment(policy)
        replicas = int((deployment.get("spec") or {}).get("replicas") or 1)
        sa = str(
            (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                "serviceAccountName"
            )
            or "default"
        )
        ns = self.settings.namespace
        self._wait(
            f"ServiceAccount {ns}/{sa} for the routers",
            lambda: (
                self.cp.kubectl("get", "serviceaccount", sa, "-n", ns, check=False).returncode == 0
            ),
            60,
        )
        kubeconfig = Path(self.cp.service_account_kubeconfig(ns, sa, duration="2h"))
        pods = local_pods(
            deployment,
            secrets=self._namespace_objects("Secret"),
            configmaps=self._namespace_objects("ConfigMap"),
            ports=[free_port() for _ in range(replicas)],
            kubeconfig=kubeconfig,
            base_env=os.environ,
        )
        self._say(
            f"routers: no kubelet here, so the {replicas} replica(s) of Deployment "
            f"{deployment['metadata']['name']} run as local processes with the pod "
            f"template's command, args and env ({'; '.join(pods[0].changes)})"
        )
        started: list[tuple[LocalPod, ManagedProcess]] = []
        for pod in pods:
            proc = ManagedProcess(
                f"router {pod.name}",
                self._with_volumes(pod),
                self.logs / f"{pod.name}.log",
                env=pod.env,
            ).start()
            started.append((pod, proc))
            self.routers.append((pod, proc))
        for pod, proc in started:
            url = f"http://127.0.0.1:{pod.port}/readyz"
            proc.wait_ready(lambda u=url: _http_ok(u), 90, what="ready (GET /readyz)")  # type: ignore[misc]
        self.prom.set_target_groups(
            [
                {
                    "targets": [f"127.0.0.1:{pod.port}"],
                    "labels": {"namespace": ns, "pod": pod.name, "tierguard_lab": "router"},
                }
                for pod, _ in self.routers
            ]
        )

    def _with_volumes(self, pod: LocalPod) -> list[str]:
        """The pod's argv, wrapped so its volumes appear at their mount paths.

        Volume files (a Secret's signing key, say) go to a private temporary directory
        (mode 0700, removed with the routers, and by the reaper if the lab is killed),
        never into lab-output.
        """
        if not pod.mounts:
            return pod.argv
        if shutil.which("unshare") is None:
            raise LabRunError(
                "the router Pod mounts volumes and the lab emulates them with a private "
                "mount namespace, which needs `unshare` (util-linux): apt-get install util-linux"
            )
        if self._pods_dir is None:
            self._pods_dir = Path(tempfile.mkdtemp(prefix="tierguard-lab-pods-"))
            remove_dir_if_we_die(self._pods_dir)
        root = self._pods_dir / pod.name
        sources: list[tuple[Any, Path]] = []
        for vm in pod.mounts:
            src = root / "volumes" / vm.volume
            src.mkdir(parents=True, exist_ok=True, mode=0o700)
            for rel, data in (vm.files or {}).items():
                f = src / rel
                f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
                f.write_bytes(data)
                f.chmod(0o600)
            sources.append((vm, src))
        script, notes = mount_script(sources, root / "scratch")
        for note in notes:
            if note not in self.notes:
                self.notes.append(note)
        return [*unshare_prefix(os.geteuid()), "sh", "-c", script, "sh", *pod.argv]

    def stop_routers(self) -> None:
        for _, proc in self.routers:
            with contextlib.suppress(Exception):
                proc.stop()
        self.routers = []
        if self._pods_dir is not None:
            shutil.rmtree(self._pods_dir, ignore_errors=True)
            keep_dir_if_we_die(self._pods_dir)
            self._pods_dir = None

    # ------------------------------------------------------------------ prometheus

    def prom_scalar(self, query: str) -> float | None:
        """One instant query summed to a number; None when Prometheus is unavailable."""
        if self.prom is None:
            return None
        url = f"{self.prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            data = _http_json(url, timeout=2.0)
        except (OSError, ValueError):
            return None
        result = (data or {}).get("data", {}).get("result") or []
        return sum(float(r["value"][1]) for r in result)

    def cost_figures(self, policy: str, last: CostFigures) -> CostFigures:
        spent = self.prom_scalar(f'sum(tierguard_cost_usd_total{{policy="{policy}"}})')
        prompt = self.prom_scalar(f'sum(tierguard_tokens_total{{policy="{policy}",kind="prompt"}})')
        completion = self.prom_scalar(
            f'sum(tierguard_tokens_total{{policy="{policy}",kind="completion"}})'
        )
        if spent is None or prompt is None or completion is None:
            return last
        pin, pout = sc.CAPABLE_PRICE
        return CostFigures(spent, (prompt * pin + completion * pout) / 1e6)

    def stop_prometheus(self) -> None:
        if self.prom is not None and self.prom.process is not None:
            self.prom.process.stop()

    def start_prometheus_again(self) -> None:
        """Start Prometheus on the same port and data directory after an outage."""
        old = self.prom.process
        proc = ManagedProcess("prometheus", old.argv, old.log_path).start()
        self.prom.process = proc
        proc.wait_ready(lambda: _http_ok(f"{self.prom.url}/-/ready"), 60, what="ready again")

    # ------------------------------------------------------------------ one rollout

    def run(self, scenario: sc.Scenario, *, policy: str | None = None) -> RunRecord:
        """Apply the scenario's policy, drive traffic and record until the rollout ends."""
        name = policy or (sc.POLICY_NAME + ("-naive" if scenario.naive else ""))
        self.start_providers(scenario)
        self.start_operator()
        manifest = self.policy_manifest(scenario, name)
        self._say(f"applying RoutingPolicy {self.settings.namespace}/{name}")
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(manifest))
        self.start_routers(name)
        traffic = scenario.traffic
        if self.settings.requests_per_second:
            from dataclasses import replace

            traffic = replace(traffic, requests_per_second=self.settings.requests_per_second)
        stage = [0]
        gen = TrafficGenerator(
            traffic,
            [f"http://127.0.0.1:{pod.port}" for pod, _ in self.routers],
            {sc.CHEAP: scenario.cheap, sc.CAPABLE: scenario.capable},
            stage=lambda: stage[0],
            baseline=sc.CAPABLE,
            tier_of_text=_bundled_tier_of_text(),
        )
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_until_complete, args=(gen.run(),), daemon=True)
        record = RunRecord(
            scenario=scenario.name,
            title=scenario.title,
            story=scenario.story,
            expected_phase=scenario.expect.phase.value,
            expected_tier=scenario.expect.failed_tier,
            policy=manifest,
            steps=sc.LAB_STEPS,
        )
        self._say(
            f"traffic: {traffic.users} simulated users, about {traffic.requests_per_second:g} "
            f"requests/s, {traffic.rating_rate:.0%} of answers rated"
        )
        thread.start()
        try:
            self._monitor(scenario, name, gen, stage, record)
        finally:
            loop.call_soon_threadsafe(gen.stop)
            thread.join(timeout=40)
            with contextlib.suppress(Exception):
                loop.close()
        record.final_status = dict(self.policy_body(name).get("status") or {})
        record.kubectl_line = self.cp.kubectl(
            "get", c.PLURAL, "-n", self.settings.namespace, "-o", "wide", check=False
        ).stdout
        record.tally = {**gen.tally.summary(), "conversations": gen.conversations.summary()}
        record.notes = list(self.notes)
        return record

    def _monitor(
        self,
        scenario: sc.Scenario,
        name: str,
        gen: TrafficGenerator,
        stage: list[int],
        record: RunRecord,
    ) -> None:
        clock = _Clock()
        cost = CostFigures()
        last_key: tuple[Any, ...] | None = None
        reached: dict[int, float] = {}
        fired: set[int] = set()
        terminal_at: float | None = None
        paused_at: float | None = None
        next_sample = 0.0
        status: Mapping[str, Any] = {}
        stage_no = 0
        stage_changed_at = 0.0
        last_weight = 0.0
        while True:
            now = clock()
            with contextlib.suppress(Exception):
                status = self.policy_body(name).get("status") or {}
            phase = str(status.get("phase") or "")
            step = int(status.get("step") or 0)
            key = (phase, step, status.get("canaryWeight"))
            if key != last_key:
                weight = float(status.get("canaryWeight") or 0.0)
                if weight < last_weight:
                    stage_no += 1  # a rollback: canary users legitimately go back
                last_weight = weight
                stage_changed_at = now
                last_key = key
            # routers pick a new weight up within a second or two of the status change
            settling = now - stage_changed_at < STAGE_SETTLE_S
            stage[0] = STAGE_SETTLING if settling else stage_no
            if phase == Phase.PROGRESSING.value:
                for s in range(step + 1):
                    reached.setdefault(s, now)
            self._fire_events(scenario, reached, fired, now, record)
            self._check_processes()
            cost = self.cost_figures(name, cost)
            tally = gen.tally
            snap = Snapshot(
                scenario=scenario.name,
                elapsed_s=now,
                policy=name,
                status=status,
                steps=sc.LAB_STEPS,
                requests=tally.requests,
                rate=tally.requests / now if now > 0 else 0.0,
                failed=tally.failed,
                rated=tally.rated(),
                p95_s=tally.latency_quantile(0.95),
                cost=cost,
                routers=sum(1 for _, p in self.routers if p.running()),
                events=[label for _, label in record.events],
            )
            self.view.show(snap)
            if now >= next_sample:
                next_sample = now + SAMPLE_EVERY_S
                record.samples.append(self._sample(now, status, cost, gen))
            if phase in TERMINAL_PHASES:
                terminal_at = terminal_at if terminal_at is not None else now
                linger = PROMOTED_MEASURE_S if phase == Phase.PROMOTED.value else SETTLE_S
                if now - terminal_at >= linger:
                    break
            paused_at = (paused_at or now) if phase == Phase.PAUSED.value else None
            if paused_at is not None and now - paused_at > PAUSED_GIVE_UP_S:
                record.notes.append(f"the rollout stayed Paused for {PAUSED_GIVE_UP_S:.0f}s")
                break
            if now > scenario.deadline_s:
                record.notes.append(
                    f"the rollout had not finished after {scenario.deadline_s:.0f}s "
                    f"(phase {phase or 'none'})"
                )
                break
            time.sleep(1.0)
        record.samples.append(self._sample(clock(), status, cost, gen))
        record.duration_s = clock()

    def _sample(
        self, t: float, status: Mapping[str, Any], cost: CostFigures, gen: TrafficGenerator
    ) -> Sample:
        tally = gen.tally
        down = sum(v for (_, _, r), v in tally.ratings.items() if r == "down")
        return Sample(
            t=t,
            status=json.loads(json.dumps(status)),
            spent_usd=cost.spent_usd,
            all_capable_usd=cost.all_capable_usd,
            requests=tally.served_total(),
            satisfied=tally.satisfied_total(),
            satisfied_if_baseline=tally.satisfied_if_baseline,
            arms={
                f"{t_}/{a}": (n, tally.satisfied[(t_, a)]) for (t_, a), n in tally.served.items()
            },
            thumbs=(down, tally.rated()),
        )

    def _fire_events(
        self,
        scenario: sc.Scenario,
        reached: Mapping[int, float],
        fired: set[int],
        now: float,
        record: RunRecord,
    ) -> None:
        for i in due_events(scenario.events, reached, fired, now):
            ev = scenario.events[i]
            fired.add(i)
            record.events.append((now, ev.label))
            self._say(f"event: {ev.label}")
            if ev.kind == "prometheus_stop":
                self.stop_prometheus()
            elif ev.kind == "prometheus_start":
                self.start_prometheus_again()
            elif ev.kind == "provider_profile" and ev.provider and ev.profile:
                self.set_provider_profile(ev.provider, ev.profile)

    def _check_processes(self) -> None:
        """A part that died mid-run ends the run with its log tail."""
        parts: list[ManagedProcess] = [p for _, p in self.routers]
        parts += list(self.providers.values())
        if self.operator is not None:
            parts.append(self.operator)
        for proc in parts:
            if not proc.running():
                raise LabRunError(
                    f"{proc.name} exited with code {proc.returncode} during the run\n"
                    f"--- last lines of {proc.log_path} ---\n{proc.log_tail()}"
                )


def _bundled_tier_of_text() -> Callable[[str], str]:
    """The lab policy's classifier (the bundled default) on one text: what per-request
    tiering would have made of a request, for the report's before/after line."""
    from tierguard.classifier.runtime import default_model_path, load_classifier

    classifier = load_classifier(default_model_path())
    return lambda text: classifier.classify(text).tier
