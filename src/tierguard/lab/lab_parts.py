"""The processes a lab session runs beside the control plane: the fake providers and
the judge, the operator (under its least-privilege ServiceAccount), and Prometheus'
queries and outage injection. Part of :class:`tierguard.lab.supervisor.Lab`."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from tierguard.lab import judge as lab_judge
from tierguard.lab import scenario_world as sw
from tierguard.lab.lab_state import LabState, http_json, http_ok
from tierguard.lab.live import CostFigures
from tierguard.lab.processes import ManagedProcess, free_port

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


class LabParts(LabState):
    """Providers, judge, operator and Prometheus of a lab session."""

    def start_providers(self, scenario: sw.Scenario) -> None:
        """The cheap and capable fake providers with the scenario's profiles, and the
        judge (started once per session)."""
        for profile in (scenario.cheap, scenario.capable):
            self._start_fake(
                profile.name, sw.fake_provider_profile(profile, seed=scenario.traffic.seed)
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
        proc.wait_ready(lambda u=url: http_ok(f"{u}/v1/models"), 60)  # type: ignore[misc]
        self.providers[name] = proc
        self.provider_urls[name] = url

    def set_provider_profile(self, name: str, profile: sw.ProviderProfile) -> None:
        """Change a running fake provider's behaviour (outage injection)."""
        http_json(
            f"{self.provider_urls[name]}/admin/profile",
            method="PUT",
            body=sw.fake_provider_profile(profile),
        )

    def set_classifier_threshold(self, policy: str, threshold: float) -> None:
        """Edit the simple tier's threshold in the policy's ``spec.classifier`` (a
        classifier change: threshold-trap), as a person would with ``kubectl patch``."""
        from tierguard.api import constants as c
        from tierguard.lab import scenario_threshold as th

        self.cp.kubectl(
            "patch", c.PLURAL, policy, "-n", self.settings.namespace, "--type", "merge",
            "-p", json.dumps(th.threshold_patch(threshold)),
        )  # fmt: skip

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

    def prom_scalar(self, query: str) -> float | None:
        """One instant query summed to a number; None when Prometheus is unavailable."""
        if self.prom is None:
            return None
        url = f"{self.prom.url}/api/v1/query?" + urllib.parse.urlencode({"query": query})
        try:
            data = http_json(url, timeout=2.0)
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
        pin, pout = sw.CAPABLE_PRICE
        return CostFigures(spent, (prompt * pin + completion * pout) / 1e6)

    def stop_prometheus(self) -> None:
        if self.prom is not None and self.prom.process is not None:
            self.prom.process.stop()

    def start_prometheus_again(self) -> None:
        """Start Prometheus on the same port and data directory after an outage."""
        old = self.prom.process
        proc = ManagedProcess("prometheus", old.argv, old.log_path).start()
        self.prom.process = proc
        proc.wait_ready(lambda: http_ok(f"{self.prom.url}/-/ready"), 60, what="ready again")
