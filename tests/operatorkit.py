"""Helpers for the operator's integration tests: the operator as a subprocess with its
least-privilege ServiceAccount, routers fed from the ConfigMap the operator renders, fake
providers, and a traffic driver that gives thumbs up/down like users would.

There is no kubelet in the testbed, so :class:`ConfigMapProjector` does the kubelet's
job for a ConfigMap volume: it copies the rendered router config to a local file and maps
the in-pod paths (classifier, signing key) to local files. The router then reloads that
file, as it would reload a mounted ConfigMap.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

from routerkit import COMPLEX_QUERY, SIMPLE_QUERY, _env, fake_provider, free_port, process
from tierguard.api import constants as c
from tierguard.lab.fakeanswers import reads_as_bad
from tierguard.operator import rbac, render


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
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "tierguard-operator"}})
    authz.create_cluster_role(rbac.cluster_role(name))
    authz.create_cluster_role_binding(
        rbac.cluster_role_binding("tierguard-operator", namespace, name)
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


class ConfigMapProjector(threading.Thread):
    """The kubelet's part: project the rendered ConfigMap into a local router config."""

    def __init__(
        self,
        kube_api: Any,
        namespace: str,
        policy: str,
        out: Path,
        classifier: Path,
        signing_key: Path,
        port: int,
    ) -> None:
        super().__init__(daemon=True)
        from kubernetes import client

        self.core = client.CoreV1Api(kube_api)
        self.namespace = namespace
        self.name = render.object_name(policy)
        self.out = out
        self.classifier = classifier
        self.signing_key = signing_key
        self.port = port
        self.stopped = threading.Event()
        self.last = ""

    def project(self) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            cm = self.core.read_namespaced_config_map(self.name, self.namespace)
        except ApiException:
            return False
        text = (cm.data or {}).get(c.ROUTER_CONFIG_KEY)
        if not text or text == self.last:
            return bool(text)
        cfg = yaml.safe_load(text)
        cfg["classifier"]["path"] = str(self.classifier)
        if cfg.get("shadowClassifier"):  # a decision shadow: the candidate is the same file
            cfg["shadowClassifier"]["path"] = str(self.classifier)
        cfg["feedback"]["signingKey"] = {"file": str(self.signing_key)}
        cfg["server"] = {**cfg.get("server", {}), "host": "127.0.0.1", "port": self.port}
        cfg["observability"]["decisionLog"] = None
        tmp = self.out.with_suffix(".tmp")
        tmp.write_text(yaml.safe_dump(cfg))
        tmp.replace(self.out)
        self.last = text
        return True

    def run(self) -> None:
        while not self.stopped.is_set():
            self.project()
            self.stopped.wait(0.2)


def _post(url: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, {}


class Traffic(threading.Thread):
    """Users asking simple and complex questions and rating every answer."""

    def __init__(self, router_url: str, category: Callable[[str, int], str] | None = None) -> None:
        super().__init__(daemon=True)
        self.url = router_url
        #: (tier, request number) -> metadata.category (default: the tier's name)
        self.category = category
        self.stopped = threading.Event()
        self.seen: Counter[tuple[str, str, str]] = Counter()
        self.errors = 0
        self.rng = random.Random(7)

    def one(self, i: int) -> None:
        tier = "complex" if i % 2 else "simple"
        query = (COMPLEX_QUERY if tier == "complex" else SIMPLE_QUERY) + f" q{i}"
        status, body = _post(
            f"{self.url}/v1/chat/completions",
            {
                "model": "auto",
                "user": f"user-{self.rng.randrange(10**9)}",
                "messages": [{"role": "user", "content": query}],
                "metadata": {"category": self.category(tier, i) if self.category else tier},
            },
        )
        if status != 200:
            self.errors += 1
            return
        text = body["choices"][0]["message"]["content"]
        good = not reads_as_bad(text)
        status, _ = _post(
            f"{self.url}/v1/feedback", {"id": body["id"], "rating": "up" if good else "down"}
        )
        self.seen[(tier, "good" if good else "bad", str(status))] += 1

    def run(self) -> None:
        i = 0
        while not self.stopped.is_set():
            try:
                self.one(i)
            except OSError:
                self.errors += 1
                time.sleep(0.2)
            i += 1


@contextmanager
def routed_system(
    tmp: Path,
    kube_api: Any,
    namespace: str,
    policy: str,
    classifier: Path,
    small_quality: dict[str, float],
    category: Callable[[str, int], str] | None = None,
) -> Iterator[tuple[str, str, Any]]:
    """Fake providers big (always good) and small; yields (big url, small url, starter),
    where ``starter()`` starts the router (once the ConfigMap exists) and traffic."""
    with ExitStack() as stack:
        big = stack.enter_context(
            fake_provider(tmp, "big", {"models": {"*": {"default_quality": 1.0}}})
        )
        small = stack.enter_context(
            fake_provider(
                tmp, "small", {"models": {"*": {"default_quality": 1.0, "quality": small_quality}}}
            )
        )
        state: dict[str, Any] = {}

        def start(wait_for: Any) -> tuple[str, Traffic]:
            port = free_port()
            key = tmp / "signing-key"
            key.write_text("test-signing-key-" + "x" * 32)
            cfg_path = tmp / "router-projected.yaml"
            proj = ConfigMapProjector(kube_api, namespace, policy, cfg_path, classifier, key, port)
            wait_for(
                proj.project, timeout=60, message="the operator never rendered the router ConfigMap"
            )
            proj.start()
            stack.callback(proj.stopped.set)
            url = f"http://127.0.0.1:{port}"
            stack.enter_context(
                process(
                    ["router", "--config", str(cfg_path), "--poll-interval", "0.2"],
                    f"{url}/readyz",
                    tmp / "router.log",
                )
            )
            traffic = Traffic(url, category)
            traffic.start()
            stack.callback(traffic.stopped.set)
            state["traffic"] = traffic
            return url, traffic

        yield big, small, start
