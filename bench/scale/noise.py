"""Objects of the operator's kinds that it does not own, and their churn.

A real cluster holds far more ConfigMaps (and Deployments, Services, ...) than the
operator renders, and other controllers keep changing them. ``bench/scale/run.py
--noise N --noise-rate R`` creates N unlabelled ConfigMaps spread over the policies'
namespaces before the operator starts (so its initial lists meet them) and patches R of
them a second, round robin, until the run ends: what the operator pays for objects that
are not its own shows in its CPU and memory.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import Any

#: Bytes of data per noise ConfigMap: a small, realistic config file.
PAYLOAD = 1024


def _name(i: int) -> str:
    return f"noise-{i:05d}"


class Noise:
    """N foreign ConfigMaps and a thread that patches ``rate`` of them a second."""

    def __init__(self, core: Any, namespaces: list[str], count: int, rate: float) -> None:
        self.core = core
        self.namespaces = namespaces
        self.count = count
        self.rate = rate
        self.updates = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _where(self, i: int) -> str:
        return self.namespaces[i % len(self.namespaces)]

    def create(self) -> None:
        def one(i: int) -> None:
            body = {
                "metadata": {"name": _name(i), "labels": {"app": "noise"}},
                "data": {"config": "x" * PAYLOAD},
            }
            self.core.create_namespaced_config_map(self._where(i), body)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(self.count)))

    def start(self) -> None:
        if self.count and self.rate > 0:
            self._thread = threading.Thread(target=self._churn, daemon=True)
            self._thread.start()

    def _churn(self) -> None:
        i = 0
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            k = i % self.count
            try:
                self.core.patch_namespaced_config_map(
                    _name(k), self._where(k), {"data": {"seq": str(i)}}
                )
                self.updates += 1
            except Exception:  # a busy API server: counted, and the churn goes on
                self.failed += 1
            i += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
