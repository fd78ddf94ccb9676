"""The state of one lab session and what every part of it uses: the settings, the
error a failed run raises, small HTTP helpers, and :class:`LabState`, the base that the
parts (:mod:`tierguard.lab.lab_parts`), the policy and routers
(:mod:`tierguard.lab.lab_routers`) and the scenario run (:mod:`tierguard.lab.lab_run`)
build on, up to :class:`tierguard.lab.supervisor.Lab`."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tierguard.lab import judge as lab_judge
from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_world as sw
from tierguard.lab.live import LiveView
from tierguard.lab.pods import LocalPod
from tierguard.lab.processes import LabError, ManagedProcess


class LabRunError(LabError):
    """The run could not be carried out (a part failed, or the rollout never ended)."""


@dataclass
class LabSettings:
    """Knobs of one lab session (the CLI fills them)."""

    out_dir: Path
    replicas: int = 2
    requests_per_second: float | None = None
    keep_workdirs: bool = False
    namespace: str = lp.NAMESPACE


def http_json(url: str, *, method: str = "GET", body: Any = None, timeout: float = 3.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def http_ok(url: str, timeout: float = 3.0) -> bool:
    """True when ``url`` answers 200 (anything else, or no answer, means "not yet")."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return int(resp.status) == 200


class LabState:
    """What one lab session holds: its settings, view and log directory, the control
    plane, Prometheus and API client once started, and the processes it runs."""

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
            name: secrets.token_urlsafe(16) for name in (sw.CHEAP, sw.CAPABLE, lab_judge.JUDGE)
        }
        self.notes: list[str] = []

    def _say(self, text: str) -> None:
        self.view.message(f"[lab] {text}")

    def _python(self) -> list[str]:
        return [sys.executable, "-m", "tierguard.cli"]

    def _child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("KUBECONFIG", None)
        return env

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
