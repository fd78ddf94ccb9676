"""Fixtures shared by the operator's integration tests (test_operator*.py). The testbed
they build on (``control_plane``, ``kube_api``, ``namespace``, ``prometheus``,
``wait_for``) is in tests/conftest.py; the helpers are in tests/operatorkit.py.

* ``crd`` (function): the RoutingPolicy CRD from crds/ applied (server-side) and
  Established; once per test, however many fixtures ask for it.
* ``operator`` (function): ``tierguard operator`` as a subprocess under its
  least-privilege ServiceAccount (:func:`operatorkit.operator_identity`), watching the
  test's namespace, standalone, logging to ``tmp_path / "operator.log"`` (read it with
  ``operator.log()``); needs ``crd``. Stopped after the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from operatorkit import OperatorProcess, install_crd, operator_identity

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

    from tierguard.lab.controlplane import ControlPlane


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
