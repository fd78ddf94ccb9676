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

:class:`Lab` keeps the session's lifecycle (steps 1-2 and the teardown) here and builds on
one module per concern: :mod:`~tierguard.lab.lab_state` (settings, state, waiting),
:mod:`~tierguard.lab.lab_parts` (steps 3-4 and Prometheus' queries),
:mod:`~tierguard.lab.lab_routers` (step 5) and :mod:`~tierguard.lab.lab_run` (step 6, one
scenario run). Every name this module defined before the split is still importable here.
"""

from __future__ import annotations

import contextlib
import json
import sys

import yaml

from tierguard.api import constants as c
from tierguard.api.crdgen import build_crd
from tierguard.lab.lab_parts import PEERING_NAME, kopf_peering_crds
from tierguard.lab.lab_run import (
    PAUSED_GIVE_UP_S,
    PROMOTED_MEASURE_S,
    SAMPLE_EVERY_S,
    SETTLE_S,
    STAGE_SETTLE_S,
    TERMINAL_PHASES,
    LabRun,
    due_events,
)
from tierguard.lab.lab_state import LabRunError, LabSettings

__all__ = [
    "PAUSED_GIVE_UP_S",
    "PEERING_NAME",
    "PROMOTED_MEASURE_S",
    "SAMPLE_EVERY_S",
    "SETTLE_S",
    "STAGE_SETTLE_S",
    "TERMINAL_PHASES",
    "Lab",
    "LabRunError",
    "LabSettings",
    "due_events",
    "kopf_peering_crds",
]


class Lab(LabRun):
    """One lab session: infrastructure started once, then one or more rollouts.

    Use as a context manager; :meth:`run` performs one scenario and returns its record.
    ``self.kube`` (a kubernetes ``ApiClient``) and :meth:`policy_body` let tests read the
    RoutingPolicy's status through the API, as an SRE would.
    """

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
