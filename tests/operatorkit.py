"""Helpers for the operator's integration tests: the operator as a subprocess with its
least-privilege ServiceAccount, the policy manifest, and the routed system a rollout
needs (fake providers, the policy created through the API, a router fed from the
ConfigMap the operator renders, users who ask and rate, Prometheus scraping the router):
:class:`RoutedSystem`, which the ``routed`` fixture (tests/integration/conftest.py) hands
out. The router-side parts are in tests/routedkit.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from routedkit import ConfigMapProjector, Traffic
from routerkit import _env, fake_provider, free_port, process
from tierguard.api import constants as c
from tierguard.operator import rbac

if TYPE_CHECKING:
    from tierguard.lab.prometheus import Prometheus


def policy_manifest(
    name: str,
    big: str,
    small: str,
    prom_url: str,
    *,
    steps: list[float] | None = None,
    bake: str = "5s",
    min_samples: int = 30,
    no_data_after: str = "30s",
    interval: str = "5s",
    judge_url: str | None = None,
    preflight: dict[str, Any] | None = None,
    slos: list[dict[str, Any]] | None = None,
    slices: list[dict[str, Any]] | None = None,
    pricing: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Two tiers, both with candidate ``small`` against baseline ``big``, each gated by a
    ThumbsDown SLO (allowed drop 0.1).

    ``judge_url``: a Pairwise LLM judge, model ``judge`` (the fake provider's ``judge-1``
    at that URL), shadowing every canary request, and both tiers gated by a
    ShadowDisagreement SLO instead; pre-flight off (such tests judge the weighted stages)
    unless ``preflight`` is given.
    ``preflight``: ``spec.rollout.preflight`` as given. ``slos``, ``slices``: replace
    ``spec.analysis.slos`` / set ``spec.analysis.slices``. ``pricing``: model name ->
    its ``pricing``.
    """
    doc = _two_tier_manifest(
        name, big, small, prom_url, steps, bake, min_samples, no_data_after, interval
    )
    spec = doc["spec"]
    if judge_url is not None:
        spec["models"].append(
            {
                "name": "judge",
                "baseURL": f"{judge_url}/v1",
                "upstreamModel": "judge-1",
                "timeout": "1s",
            }
        )
        spec["router"]["shadow"] = {
            "sampleRate": 1.0,
            "judge": {"type": "LLM", "model": "judge", "mode": "Pairwise"},
        }
        spec["rollout"]["preflight"] = {"enabled": False}
        spec["analysis"]["slos"] = [
            {"tier": t, "signal": "ShadowDisagreement", "allowedDrop": 0.1}
            for t in ("simple", "complex")
        ]
    if preflight is not None:
        spec["rollout"]["preflight"] = preflight
    if slos is not None:
        spec["analysis"]["slos"] = slos
    if slices is not None:
        spec["analysis"]["slices"] = slices
    prices = pricing or {}
    for m in spec["models"]:
        if m["name"] in prices:
            m["pricing"] = prices[m["name"]]
    return doc


def _two_tier_manifest(
    name: str,
    big: str,
    small: str,
    prom_url: str,
    steps: list[float] | None,
    bake: str,
    min_samples: int,
    no_data_after: str,
    interval: str,
) -> dict[str, Any]:
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name},
        "spec": {
            "classifier": {"tiers": [{"name": "simple", "threshold": 0.5}, {"name": "complex"}]},
            "models": [
                {"name": "big", "baseURL": f"{big}/v1", "upstreamModel": "big-1", "timeout": "5s"},
                {
                    "name": "small",
                    "baseURL": f"{small}/v1",
                    "upstreamModel": "small-1",
                    "timeout": "5s",
                },
            ],
            "routes": [
                {"tier": "simple", "baseline": "big", "candidate": "small"},
                {"tier": "complex", "baseline": "big", "candidate": "small"},
            ],
            "rollout": {
                "steps": steps or [10, 50, 100],
                "interval": interval,
                "bakeTime": bake,
                "minSamplesPerArm": min_samples,
                "maxStepDuration": "2h",
                "holdbackPercent": 5,
                "noData": {"after": no_data_after, "action": "Pause"},
            },
            "analysis": {
                "confidence": 0.95,
                "slos": [
                    {"tier": "simple", "signal": "ThumbsDown", "allowedDrop": 0.1},
                    {"tier": "complex", "signal": "ThumbsDown", "allowedDrop": 0.1},
                ],
            },
            "prometheus": {"url": prom_url, "timeout": "2s"},
            "router": {"replicas": 1},
        },
    }


def install_crd(control_plane: Any) -> None:
    root = Path(__file__).resolve().parents[1]
    control_plane.kubectl("apply", "--server-side", "-f", str(root / "crds"))
    control_plane.wait_established(c.CRD_NAME)


@contextmanager
def operator_identity(control_plane: Any, kube_api: Any, namespace: str) -> Iterator[Path]:
    """A ServiceAccount bound to exactly :data:`rbac.OPERATOR_RULES`; yields its kubeconfig."""
    from kubernetes import client

    core = client.CoreV1Api(kube_api)
    authz = client.RbacAuthorizationV1Api(kube_api)
    name = f"tierguard-operator-{namespace}"
    from kubemodels import as_model

    account = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="tierguard-operator"))
    core.create_namespaced_service_account(namespace, account)
    authz.create_cluster_role(as_model(client.V1ClusterRole, rbac.cluster_role(name)))
    authz.create_cluster_role_binding(
        as_model(
            client.V1ClusterRoleBinding,
            rbac.cluster_role_binding("tierguard-operator", namespace, name),
        )
    )
    try:
        yield control_plane.service_account_kubeconfig(namespace, "tierguard-operator")
    finally:
        authz.delete_cluster_role_binding(name)
        authz.delete_cluster_role(name)


class OperatorProcess:
    """``tierguard operator`` as a child process (killable, restartable)."""

    def __init__(
        self,
        kubeconfig: Path,
        namespace: str,
        log_path: Path,
        *,
        extra_args: list[str] | None = None,
        env: dict[str, str] | None = None,
        peering: tuple[str, int] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.namespace = namespace
        self.log_path = log_path
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        #: (peering object name, priority): take part in kopf peering instead of
        #: running standalone.
        self.peering = peering
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "tierguard.cli",
            "operator",
            "--kubeconfig",
            str(self.kubeconfig),
            "--namespace",
            self.namespace,
            "--resync",
            "1",
            *(
                ["--peering-name", self.peering[0], "--priority", str(self.peering[1])]
                if self.peering
                else ["--standalone"]
            ),
            "--log-level",
            "info",
            *self.extra_args,
        ]
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, env={**_env(), **self.env}, stdout=log, stderr=subprocess.STDOUT
        )

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a node failure."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]


@dataclass(frozen=True)
class Served:
    """A policy being served: its manifest as created, the router's URL, its users."""

    manifest: dict[str, Any]
    url: str
    traffic: Traffic


class RoutedSystem:
    """Fake providers ``big`` (always good) and ``small`` for one policy; :meth:`serve`
    does the rest of a rollout's set-up, in the order a cluster would see it."""

    def __init__(
        self,
        stack: ExitStack,
        tmp: Path,
        kube_api: Any,
        namespace: str,
        policy: str,
        classifier: Path,
        prometheus: Prometheus,
        wait_for: Callable[..., Any],
        small_quality: dict[str, float],
        category: Callable[[str, int], str] | None,
    ) -> None:
        self.stack = stack
        self.tmp = tmp
        self.kube_api = kube_api
        self.namespace = namespace
        self.policy = policy
        self.classifier = classifier
        self.prometheus = prometheus
        self.wait_for = wait_for
        self.category = category
        self.big = stack.enter_context(
            fake_provider(tmp, "big", {"models": {"*": {"default_quality": 1.0}}})
        )
        small = {"models": {"*": {"default_quality": 1.0, "quality": small_quality}}}
        self.small = stack.enter_context(fake_provider(tmp, "small", small))

    @property
    def prom_url(self) -> str:
        return self.prometheus.url

    def manifest(self, **policy_kw: Any) -> dict[str, Any]:
        """:func:`policy_manifest` of this policy on these providers and Prometheus."""
        return policy_manifest(self.policy, self.big, self.small, self.prom_url, **policy_kw)

    def serve(self, manifest: dict[str, Any] | None = None, **policy_kw: Any) -> Served:
        """Create ``manifest`` (default: :meth:`manifest` of ``policy_kw``) through the
        API, start the router once the operator has rendered its ConfigMap, start the
        users' traffic and point Prometheus at the router. Everything stops when the
        ``routed`` block ends."""
        from kubernetes import client

        doc = manifest if manifest is not None else self.manifest(**policy_kw)
        client.CustomObjectsApi(self.kube_api).create_namespaced_custom_object(
            c.GROUP, c.VERSION, self.namespace, c.PLURAL, doc
        )
        port = free_port()
        key = self.tmp / "signing-key"
        key.write_text("test-signing-key-" + "x" * 32)
        cfg_path = self.tmp / "router-projected.yaml"
        proj = ConfigMapProjector(
            self.kube_api, self.namespace, self.policy, cfg_path, self.classifier, key, port
        )
        self.wait_for(
            proj.project, timeout=60, message="the operator never rendered the router ConfigMap"
        )
        proj.start()
        self.stack.callback(proj.stopped.set)
        url = f"http://127.0.0.1:{port}"
        self.stack.enter_context(
            process(
                ["router", "--config", str(cfg_path), "--poll-interval", "0.2"],
                f"{url}/readyz",
                self.tmp / "router.log",
            )
        )
        traffic = Traffic(url, self.category)
        traffic.start()
        self.stack.callback(traffic.stopped.set)
        self.prometheus.set_targets([url.removeprefix("http://")])
        return Served(doc, url, traffic)


@dataclass(frozen=True)
class Routed:
    """What a :class:`RoutedSystem` needs from the testbed (the ``routed`` fixture):
    ``with routed(POLICY) as rs: rs.serve(bake="1h")``."""

    tmp: Path
    kube_api: Any
    namespace: str
    classifier: Path
    prometheus: Prometheus
    wait_for: Callable[..., Any]

    @contextmanager
    def __call__(
        self,
        policy: str,
        small_quality: dict[str, float] | None = None,
        category: Callable[[str, int], str] | None = None,
    ) -> Iterator[RoutedSystem]:
        """``small_quality``: the small provider's quality per category (default: all
        good); ``category``: (tier, request number) -> the traffic's metadata.category."""
        with ExitStack() as stack:
            yield RoutedSystem(
                stack,
                self.tmp,
                self.kube_api,
                self.namespace,
                policy,
                self.classifier,
                self.prometheus,
                self.wait_for,
                small_quality or {},
                category,
            )
