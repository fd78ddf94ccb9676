"""The lab's RoutingPolicy manifests and its routers: the policy a scenario applies,
and the operator's rendered Deployment run as local processes (no kubelet here), with
their volumes emulated in a private mount namespace. Part of
:class:`tierguard.lab.supervisor.Lab`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tierguard.api import constants as c
from tierguard.api.resource import RoutingPolicy
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_world as sw
from tierguard.lab.lab_parts import LabParts
from tierguard.lab.lab_state import LabRunError, http_ok
from tierguard.lab.pods import LocalPod, local_pods
from tierguard.lab.podvolumes import mount_script, unshare_prefix
from tierguard.lab.processes import (
    ManagedProcess,
    free_port,
    keep_dir_if_we_die,
    remove_dir_if_we_die,
)


class LabRouters(LabParts):
    """Policy manifests and routers of a lab session."""

    def policy_manifest(self, scenario: sw.Scenario, name: str) -> dict[str, Any]:
        body = lp.lab_policy(
            scenario,
            cheap_url=f"{self.provider_urls[sw.CHEAP]}/v1",
            capable_url=f"{self.provider_urls[sw.CAPABLE]}/v1",
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
            proc.wait_ready(lambda u=url: http_ok(u), 90, what="ready (GET /readyz)")  # type: ignore[misc]
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
