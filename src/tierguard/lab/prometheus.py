"""A real Prometheus (Debian's package) with targets set at run time.

The operator's gates read Prometheus, so tests and the lab need the real query engine:
PromQL semantics, staleness, ``rate()`` over counter resets and an empty vector when a
series is missing are exactly what the gates must survive. This module starts our own
``prometheus`` process -- never the system service the Debian package may start --
with a generated configuration, its own data directory and a free port on 127.0.0.1.

Targets come from file service discovery: :meth:`Prometheus.set_targets` rewrites a
JSON file atomically and Prometheus picks it up within about a second (inotify), so a
test can point Prometheus at a router it has just started without a reload. The
scrape and evaluation intervals default to 1s so data arrives fast enough for tests.

Queries are not wrapped here: use prometheus-api-client or plain HTTP on
:attr:`Prometheus.url`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tierguard.lab.processes import (
    BinaryUnavailableError,
    LabError,
    ManagedProcess,
    ProcessExitedError,
    free_port,
    install_signal_handlers,
    keep_dir_if_we_die,
    remove_dir_if_we_die,
)

__all__ = [
    "Prometheus",
    "PrometheusError",
    "PrometheusSettings",
    "ensure_prometheus",
    "prometheus_version",
    "render_config",
]

ENV_BINARY = "TIERGUARD_PROMETHEUS"
DEFAULT_JOB = "tierguard"
_DURATION = re.compile(r"^\d+(ms|s|m|h)$")


class PrometheusError(LabError):
    """Prometheus could not be started, configured or reached."""


@dataclass(frozen=True)
class PrometheusSettings:
    """What goes into the generated prometheus.yml.

    ``scrape_interval`` is also the scrape timeout (it may not exceed the interval).
    ``rule_files`` lets the lab load recording/alerting rules (e.g. the chart's alerts).
    ``metrics_path`` applies to the file-SD job; routers serve ``/metrics``.
    """

    scrape_interval: str = "1s"
    evaluation_interval: str = "1s"
    job_name: str = DEFAULT_JOB
    metrics_path: str = "/metrics"
    rule_files: tuple[Path, ...] = ()
    extra_scrape_configs: tuple[Mapping[str, Any], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        for name in ("scrape_interval", "evaluation_interval"):
            value = getattr(self, name)
            if not _DURATION.match(value):
                raise PrometheusError(f"{name}={value!r} is not a Prometheus duration like '1s'")


def render_config(settings: PrometheusSettings, targets_file: Path) -> dict[str, Any]:
    """The prometheus.yml content (pure, so it is unit-tested without Prometheus)."""
    scrape: dict[str, Any] = {
        "job_name": settings.job_name,
        "metrics_path": settings.metrics_path,
        "scrape_interval": settings.scrape_interval,
        "scrape_timeout": settings.scrape_interval,
        "file_sd_configs": [{"files": [str(targets_file)], "refresh_interval": "5s"}],
    }
    config: dict[str, Any] = {
        "global": {
            "scrape_interval": settings.scrape_interval,
            "scrape_timeout": settings.scrape_interval,
            "evaluation_interval": settings.evaluation_interval,
        },
        "scrape_configs": [scrape, *[dict(c) for c in settings.extra_scrape_configs]],
    }
    if settings.rule_files:
        config["rule_files"] = [str(p) for p in settings.rule_files]
    return config


def target_groups(
    targets: Sequence[str], labels: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The file-SD JSON for one group of ``host:port`` targets (pure)."""
    for t in targets:
        if "://" in t or "/" in t:
            raise PrometheusError(
                f"target {t!r} must be host:port (the path is the job's metrics_path)"
            )
    if not targets:
        return []
    return [{"targets": list(targets), "labels": dict(labels or {})}]


# --------------------------------------------------------------------------- binary


def prometheus_version(binary: Path) -> str:
    """``2.42.0+ds`` from ``prometheus --version``."""
    res = subprocess.run(
        [str(binary), "--version"], capture_output=True, text=True, timeout=30, check=False
    )
    match = re.search(r"version (\S+)", res.stdout + res.stderr)
    return match.group(1) if match else "?"


def ensure_prometheus(*, install: bool = True) -> Path:
    """Find the prometheus binary; install Debian's package when missing and allowed.

    Order: ``$TIERGUARD_PROMETHEUS``, ``prometheus`` on PATH, /usr/bin/prometheus.
    When missing and we are root, ``apt-get install -y prometheus`` (the package may
    also start a system service on :9090; we never use it). Otherwise raise
    :class:`~tierguard.lab.processes.BinaryUnavailableError` saying how to get it.
    """
    override = os.environ.get(ENV_BINARY)
    if override:
        path = Path(override)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise BinaryUnavailableError(f"{ENV_BINARY}={override} is not an executable file")
    found = shutil.which("prometheus") or (
        "/usr/bin/prometheus" if os.access("/usr/bin/prometheus", os.X_OK) else None
    )
    if found:
        return Path(found)
    how = (
        "Prometheus is required: install Debian's package (sudo apt-get install -y prometheus) "
        f"or set {ENV_BINARY} to a prometheus binary (2.x or 3.x). See docs/testbed.md."
    )
    if not install or os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise BinaryUnavailableError(how)
    print("[tierguard] installing Prometheus: apt-get install -y prometheus", file=sys.stderr)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for attempt in ("install", "update+install"):
        if attempt == "update+install":
            subprocess.run(["apt-get", "update"], env=env, check=False, timeout=600)
        res = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"],
            env=env,
            check=False,
            timeout=1200,
        )
        if res.returncode == 0 and os.access("/usr/bin/prometheus", os.X_OK):
            return Path("/usr/bin/prometheus")
    raise BinaryUnavailableError("apt-get could not install prometheus. " + how)


# --------------------------------------------------------------------------- process


class Prometheus:
    """Our own Prometheus process: generated config, file-SD targets, temp data dir.

    ``with Prometheus() as prom: prom.set_targets(["127.0.0.1:8080"])`` -- then query
    ``prom.url``. The working directory is removed by :meth:`stop` unless
    ``keep_workdir`` is set or starting failed.
    """

    def __init__(
        self,
        settings: PrometheusSettings | None = None,
        *,
        scrape_interval: str | None = None,
        binary: Path | None = None,
        workdir: Path | None = None,
        start_timeout: float = 60.0,
        keep_workdir: bool = False,
    ) -> None:
        if settings is None:
            settings = PrometheusSettings()
        if scrape_interval is not None:
            settings = PrometheusSettings(
                scrape_interval=scrape_interval,
                evaluation_interval=scrape_interval,
                job_name=settings.job_name,
                metrics_path=settings.metrics_path,
                rule_files=settings.rule_files,
                extra_scrape_configs=settings.extra_scrape_configs,
            )
        self.settings = settings
        self.binary = binary if binary is not None else ensure_prometheus()
        self._own_workdir = workdir is None
        self.workdir = (
            workdir
            if workdir is not None
            else Path(tempfile.mkdtemp(prefix="tierguard-prometheus-"))
        )
        if self._own_workdir:
            remove_dir_if_we_die(self.workdir)
        self.start_timeout = start_timeout
        self.keep_workdir = keep_workdir
        self.config_file = self.workdir / "prometheus.yml"
        self.targets_file = self.workdir / "targets.json"
        self.log_path = self.workdir / "prometheus.log"
        self.port = 0
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:41234`` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        """Write the config, start Prometheus and wait for ``/-/ready``."""
        install_signal_handlers()
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.targets_file.exists():
            self.set_targets([])
        self.write_config()
        for attempt in range(3):
            self.port = free_port()
            proc = ManagedProcess(
                "prometheus",
                [
                    str(self.binary),
                    f"--config.file={self.config_file}",
                    f"--storage.tsdb.path={self.workdir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--web.enable-lifecycle",
                    "--storage.tsdb.retention.time=1d",
                    "--log.level=info",
                ],
                self.log_path,
            ).start()
            try:
                proc.wait_ready(self._ready, self.start_timeout, what="ready (GET /-/ready)")
            except ProcessExitedError:
                proc.stop()
                if attempt < 2 and "address already in use" in proc.log_tail(100):
                    continue
                self.keep_workdir = True
                raise
            except BaseException:
                proc.stop()
                self.keep_workdir = True
                raise
            self.process = proc
            return self
        raise AssertionError("unreachable")  # pragma: no cover

    def _ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=5) as resp:
            return int(resp.status) == 200

    def stop(self) -> None:
        """Stop the process and remove the working directory (idempotent)."""
        if self.process is not None:
            self.process.stop()
        if self._own_workdir:
            if not self.keep_workdir:
                shutil.rmtree(self.workdir, ignore_errors=True)
            keep_dir_if_we_die(self.workdir)

    def __enter__(self) -> Prometheus:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_config(self) -> None:
        """(Re)write prometheus.yml from :attr:`settings`; call :meth:`reload` if running."""
        config = render_config(self.settings, self.targets_file)
        self.config_file.write_text(yaml.safe_dump(config, sort_keys=False))

    def reload(self) -> None:
        """Ask the running Prometheus to re-read its configuration (POST /-/reload)."""
        req = urllib.request.Request(f"{self.url}/-/reload", method="POST")
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                if int(resp.status) != 200:
                    raise PrometheusError(f"reload answered HTTP {resp.status}")
        except urllib.error.HTTPError as exc:
            raise PrometheusError(
                f"reload failed: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
            ) from exc

    def set_targets(self, targets: Sequence[str], labels: Mapping[str, str] | None = None) -> None:
        """Scrape exactly these ``host:port`` targets from now on (atomic file swap)."""
        self.set_target_groups(target_groups(targets, labels))

    def set_target_groups(self, groups: Sequence[Mapping[str, Any]]) -> None:
        """Replace the file-SD content with several groups, each with its own labels."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        tmp = self.targets_file.with_name(f".{self.targets_file.name}.tmp")
        tmp.write_text(json.dumps([dict(g) for g in groups], indent=1))
        os.replace(tmp, self.targets_file)

    def log_tail(self, lines: int = 40) -> str:
        """The end of Prometheus's log, for diagnostics."""
        if self.process is None:
            return "(not started)"
        return self.process.log_tail(lines)
