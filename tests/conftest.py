"""Fixtures for tests that need the real testbed: kube-apiserver + etcd + controller
manager, and Prometheus (see docs/testbed.md).

* ``control_plane`` (session): a started :class:`~tierguard.lab.controlplane.ControlPlane`
  with its audit log on (``control_plane.audit_events()``).
* ``kube_api`` (session): a kubernetes ``ApiClient`` configured from its admin kubeconfig.
* ``namespace`` (function): a fresh namespace, deleted after the test.
* ``prometheus_server`` (session) / ``prometheus`` (function, same process, targets
  reset after each test): a real Prometheus whose targets a test sets with
  ``prometheus.set_targets(["127.0.0.1:PORT"])``.
* ``wait_for``: :func:`tierguard.lab.waiting.wait_for` (poll a predicate with a deadline).

The binaries are found or built *before the first test runs* (in
``pytest_collection_finish``, output not captured), so a cold 25-minute build shows
its progress in the terminal and is not cut short by a test's timeout. If they cannot
be had, every test that needs them fails with a message saying how to get them: a
missing binary is never a skip.

The fixtures live here rather than in tests/integration/conftest.py so that the e2e
tests can use them too; everything heavy is imported lazily, so unit-test runs do not
pay for it.
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane, ControlPlaneBinaries
    from tierguard.lab.prometheus import Prometheus

_CONTROL_PLANE_FIXTURES = {"control_plane", "kube_api", "namespace"}
_PROMETHEUS_FIXTURES = {"prometheus", "prometheus_server"}

# Filled by pytest_collection_finish: the binaries, or the error explaining their absence.
_prepared: dict[str, Any] = {}


def _needs(session: pytest.Session, fixtures: set[str]) -> bool:
    return any(fixtures & set(getattr(item, "fixturenames", ())) for item in session.items)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Find/build the binaries once, visibly, before any test (and its timeout) starts."""
    if session.config.option.collectonly:
        return
    want_cp = _needs(session, _CONTROL_PLANE_FIXTURES)
    want_prom = _needs(session, _PROMETHEUS_FIXTURES)
    if not (want_cp or want_prom):
        return
    from tierguard.lab.processes import BinaryUnavailableError

    capman = session.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        if want_cp:
            from tierguard.lab.controlplane import ensure_binaries

            try:
                _prepared["binaries"] = ensure_binaries(progress=sys.stderr)
            except BinaryUnavailableError as exc:
                _prepared["binaries_error"] = exc
        if want_prom:
            from tierguard.lab.prometheus import ensure_prometheus

            try:
                _prepared["prometheus"] = ensure_prometheus()
            except BinaryUnavailableError as exc:
                _prepared["prometheus_error"] = exc


def _binaries() -> ControlPlaneBinaries:
    from tierguard.lab.controlplane import ensure_binaries
    from tierguard.lab.processes import BinaryUnavailableError

    if "binaries_error" in _prepared:
        pytest.fail(str(_prepared["binaries_error"]), pytrace=False)
    if "binaries" in _prepared:
        return _prepared["binaries"]  # type: ignore[no-any-return]
    try:
        return ensure_binaries(progress=sys.stderr)
    except BinaryUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    """A real control plane for the whole session (stopped, and its files removed, at the end)."""
    from tierguard.lab.controlplane import ControlPlane
    from tierguard.lab.processes import LabError

    # audit=True: tests count the operator's API writes from the audit log.
    cp = ControlPlane(_binaries(), audit=True)
    try:
        cp.start()
    except LabError as exc:
        pytest.fail(f"the control plane did not start:\n{exc}", pytrace=False)
    yield cp
    cp.stop()


@pytest.fixture(scope="session")
def kube_api(control_plane: ControlPlane) -> Iterator[ApiClient]:
    """A kubernetes ``ApiClient`` with admin (system:masters) rights on the testbed."""
    from tierguard.operator.kube import load_api_client

    client = load_api_client(str(control_plane.kubeconfig))
    yield client
    client.close()  # type: ignore[no-untyped-call]  # kubernetes: ApiClient.close is unannotated


def _namespace_name(nodeid: str) -> str:
    """A valid, recognisable namespace name for a test: t-<test name>-<random>."""
    test = nodeid.rsplit("::", 1)[-1]
    slug = re.sub(r"[^a-z0-9-]+", "-", test.lower()).strip("-")[:40].strip("-")
    return f"t-{slug}-{secrets.token_hex(3)}"


@pytest.fixture
def namespace(kube_api: ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test; deleted afterwards (without waiting for it to go)."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(kube_api)
    name = _namespace_name(request.node.nodeid)
    core.create_namespace(
        client.V1Namespace(
            metadata=client.V1ObjectMeta(name=name, labels={"tierguard.io/test": "true"})
        )
    )
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:  # the test may have deleted it itself
            raise


def _prometheus_binary() -> Path:
    from tierguard.lab.processes import BinaryUnavailableError
    from tierguard.lab.prometheus import ensure_prometheus

    if "prometheus_error" in _prepared:
        pytest.fail(str(_prepared["prometheus_error"]), pytrace=False)
    if "prometheus" in _prepared:
        return _prepared["prometheus"]  # type: ignore[no-any-return]
    try:
        return ensure_prometheus()
    except BinaryUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def prometheus_server() -> Iterator[Prometheus]:
    """One real Prometheus for the session (1s scrape interval, no targets at first)."""
    from tierguard.lab.processes import LabError
    from tierguard.lab.prometheus import Prometheus

    prom = Prometheus(binary=_prometheus_binary())
    try:
        prom.start()
    except LabError as exc:
        pytest.fail(f"Prometheus did not start:\n{exc}", pytrace=False)
    yield prom
    prom.stop()


@pytest.fixture
def prometheus(prometheus_server: Prometheus) -> Iterator[Prometheus]:
    """The session's Prometheus; targets a test sets are cleared when it ends."""
    yield prometheus_server
    prometheus_server.set_targets([])


@pytest.fixture
def wait_for() -> Callable[..., Any]:
    """``wait_for(predicate, timeout=30, message="...")``: poll until truthy, else fail."""
    from tierguard.lab.waiting import wait_for as _wait_for

    return _wait_for
