"""Fixtures shared by the operator's integration tests (test_operator*.py). The testbed
they build on (``control_plane``, ``kube_api``, ``namespace``, ``prometheus``,
``wait_for``) is in tests/conftest.py; the helpers are in tests/operatorkit.py.

* ``crd`` (function): the RoutingPolicy CRD from crds/ applied (server-side) and
  Established; once per test, however many fixtures ask for it.
* ``operator`` (function): ``tierguard operator`` as a subprocess under its
  least-privilege ServiceAccount (:func:`operatorkit.operator_identity`), watching the
  test's namespace, standalone, logging to ``tmp_path / "operator.log"`` (read it with
  ``operator.log()``); needs ``crd``. Stopped after the test.
* ``routed`` (function): :class:`operatorkit.Routed` on this test's namespace, Prometheus
  and ``tiny_classifier``: ``with routed(POLICY) as rs: served = rs.serve(...)`` starts
  the fake providers, creates the policy, starts the router on the rendered ConfigMap,
  its traffic, and points Prometheus at it; all stopped when the block ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from operatorkit import OperatorProcess, Routed, install_crd, operator_identity
from routerkit import tiny_classifier as tiny_classifier

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane
    from tierguard.lab.prometheus import Prometheus


@pytest.fixture
def crd(control_plane: ControlPlane) -> None:
    install_crd(control_plane)


@pytest.fixture
def operator(
    crd: None, control_plane: ControlPlane, kube_api: ApiClient, namespace: str, tmp_path: Path
) -> Iterator[OperatorProcess]:
    with operator_identity(control_plane, kube_api, namespace) as kubeconfig:
        op = OperatorProcess(kubeconfig, namespace, tmp_path / "operator.log")
        op.start()
        try:
            yield op
        finally:
            op.stop()


@pytest.fixture
def routed(
    kube_api: ApiClient,
    namespace: str,
    prometheus: Prometheus,
    tiny_classifier: Path,
    tmp_path: Path,
    wait_for: Callable[..., Any],
) -> Routed:
    return Routed(tmp_path, kube_api, namespace, tiny_classifier, prometheus, wait_for)
