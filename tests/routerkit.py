"""Shared helpers for the router's tests: a tiny contract-conforming ONNX classifier and
router configs. (The bundled default model lives on the classifier branch; these tests do
not depend on it.)

The tiny model is word TF-IDF + logistic regression trained on a handful of phrases, so
its decisions are obvious: queries about orders, passwords or opening hours are
``simple``; long analytical requests (proof, legal, analysis, architecture) are
``complex``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIMPLE = [
    "where is my order",
    "reset my password",
    "what are your opening hours",
    "track my parcel",
    "change my email address",
    "cancel my order",
    "update my address",
    "how do I log in",
    "order status please",
    "password reset link",
]
COMPLEX = [
    "write a detailed legal analysis of the contract clauses",
    "prove the theorem and explain each step of the proof",
    "design a distributed architecture for payments with analysis of trade-offs",
    "compare the legal implications across jurisdictions in detail",
    "analyse the statistical methodology and critique the proof",
    "explain the architecture trade-offs and write the legal analysis",
    "detailed analysis of the algorithm complexity and proof of correctness",
    "legal analysis proof architecture detailed critique",
]
SIMPLE_QUERY = "where is my order"
COMPLEX_QUERY = "write a detailed legal analysis and proof of the architecture"


def build_tiny_classifier(path: Path, threshold: float = 0.5) -> Path:
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    texts = SIMPLE + COMPLEX
    labels = [0] * len(SIMPLE) + [1] * len(COMPLEX)
    # lowercase=False: lower-casing needs ONNX StringNormalizer, which wants an installed
    # en_US locale this machine may lack
    pipe = Pipeline(
        [("tfidf", TfidfVectorizer(lowercase=False)), ("lr", LogisticRegression(C=20.0))]
    )
    pipe.fit(texts, labels)
    onx = convert_sklearn(
        pipe,
        initial_types=[("text", StringTensorType([None, 1]))],
        options={id(pipe.steps[-1][1]): {"zipmap": False}},
        target_opset=17,
    )
    for out in onx.graph.output:
        if out.name == "probabilities":
            break
    else:
        raise AssertionError([o.name for o in onx.graph.output])
    meta = {
        "tierguard.contract": "1",
        "tierguard.tiers": json.dumps(["simple", "complex"]),
        "tierguard.thresholds": json.dumps({"simple": threshold}),
        "tierguard.version": "tiny-test",
        "tierguard.training_data_sha256": "0" * 64,
        "tierguard.metrics": "{}",
    }
    for k, v in meta.items():
        p = onx.metadata_props.add()
        p.key, p.value = k, v
    path.write_bytes(onx.SerializeToString())
    return path


def router_config(
    classifier_path: Path | str,
    *,
    big_url: str = "http://127.0.0.1:1/v1",
    small_url: str = "http://127.0.0.1:1/v1",
    weight: float = 0.0,
    control_arm: str = "control",
    model_extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """A two-tier config: simple → big (baseline) / small (candidate), complex → big.
    ``model_extra`` is merged into both models (e.g. ``{"streamUsage": True}``)."""
    cfg: dict[str, Any] = {
        "policy": "support",
        "salt": "test-salt",
        "revision": "r1",
        "classifier": {
            "path": str(classifier_path),
            "tiers": [{"name": "simple"}, {"name": "complex"}],
        },
        "models": [
            {
                "name": "big",
                "baseURL": big_url,
                "upstreamModel": "big-1",
                "pricing": {"inputPerMillionTokens": 10, "outputPerMillionTokens": 30},
                "timeout": "5s",
                "systemPrompt": "You are Acme's assistant ({model}, {tier}).",
            },
            {
                "name": "small",
                "baseURL": small_url,
                "upstreamModel": "small-1",
                "pricing": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 2},
                "timeout": "5s",
                "systemPrompt": "You are Acme's assistant ({model}, {tier}).",
            },
        ],
        "routes": [
            {
                "tier": "simple",
                "baseline": "big",
                "candidate": "small",
                "fallbacks": ["big"],
                "latencyBudget": "2s",
            },
            {"tier": "complex", "baseline": "big", "latencyBudget": "2s"},
        ],
        "split": [{"tier": "simple", "weight": weight, "controlArm": control_arm}],
        "observability": {"decisionLog": None},
    }
    if model_extra:
        cfg["models"] = [{**m, **model_extra} for m in cfg["models"]]
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **value}
        else:
            cfg[key] = value
    return cfg


# --------------------------------------------------------------------------- fixtures
# (imported by the router's test modules; kept here rather than in a conftest.py that
# other parts of the project also write)

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_classifier(tmp_path_factory.mktemp("classifier") / "tiny.onnx")


# --------------------------------------------------------------------------- processes

import os  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from contextlib import contextmanager  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = f"{SRC}{os.pathsep}{env.get('PYTHONPATH', '')}"
    return env


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 30.0) -> None:
    """Poll ``url`` until it answers 200 (readiness, not a timed assertion)."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} was ready")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout_s}s")


@contextmanager
def process(
    args: list[str],
    ready_url: str,
    log_path: Path,
    cpu: int | str | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``tierguard`` command (``env`` is added to this process's environment)."""
    cmd = [sys.executable, "-m", "tierguard.cli", *args]
    if cpu is not None:
        cmd = ["taskset", "-c", str(cpu), *cmd]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            cmd, env={**_env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_http(ready_url, proc)
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@contextmanager
def fake_provider(tmp: Path, name: str, profile: dict[str, Any] | None = None) -> Iterator[str]:
    """A fake provider process; yields its base URL (``http://127.0.0.1:PORT``)."""
    import yaml

    port = free_port()
    args = ["fake-provider", "--port", str(port)]
    if profile is not None:
        path = tmp / f"{name}-profile.yaml"
        path.write_text(yaml.safe_dump(profile))
        args += ["--profile", str(path)]
    with process(args, f"http://127.0.0.1:{port}/v1/models", tmp / f"{name}.log"):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def router_process(
    tmp: Path,
    config: dict[str, Any],
    cpu: int | None = None,
    args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[tuple[str, Path, subprocess.Popen[bytes]]]:
    """A router process on a config file; yields (base URL, config path, process).
    ``args`` are added to the command line, ``env`` to its environment."""
    import yaml

    port = free_port()
    config = {**config, "server": {**config.get("server", {}), "host": "127.0.0.1", "port": port}}
    path = tmp / "router.yaml"
    path.write_text(yaml.safe_dump(config))
    with process(
        ["router", "--config", str(path), "--poll-interval", "0.2", *(args or [])],
        f"http://127.0.0.1:{port}/readyz",
        tmp / "router.log",
        cpu=cpu,
        env=env,
    ) as proc:
        yield f"http://127.0.0.1:{port}", path, proc


def write_config(path: Path, config: dict[str, Any]) -> None:
    """Replace a watched config file atomically (as a ConfigMap volume update does)."""
    import yaml

    current = yaml.safe_load(path.read_text())
    new = {**config, "server": current["server"]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(new))
    os.replace(tmp, path)


def http(method: str, url: str, body: Any = None) -> tuple[int, Any]:
    """A tiny stdlib HTTP call for admin/metrics endpoints: (status, JSON or text)."""
    import urllib.error

    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        status, raw, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
    return status, (json.loads(raw) if "json" in ctype else raw.decode())
