"""The e2e tests start the whole lab; its binaries are found or built before any test runs.

Like the testbed fixtures in tests/conftest.py: a cold build of kube-apiserver takes
about 20 minutes, so it happens once, visibly, in ``pytest_collection_finish`` (output
not captured) and not inside a test and its timeout. A missing binary that cannot be
built fails the e2e tests with instructions; it is never a skip.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

_prepared: dict[str, Any] = {}


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    if session.config.option.collectonly:
        return
    if not any(item.get_closest_marker("e2e") for item in session.items):
        return
    from tierguard.lab.controlplane import ensure_binaries
    from tierguard.lab.processes import BinaryUnavailableError
    from tierguard.lab.prometheus import ensure_prometheus

    capman = session.config.pluginmanager.getplugin("capturemanager")
    with capman.global_and_fixture_disabled():
        try:
            ensure_binaries(progress=sys.stderr)
            ensure_prometheus()
        except BinaryUnavailableError as exc:
            _prepared["error"] = exc


@pytest.fixture(scope="session")
def lab_prerequisites() -> None:
    """Fails (never skips) when the control plane or Prometheus cannot be had."""
    if "error" in _prepared:
        pytest.fail(str(_prepared["error"]), pytrace=False)
