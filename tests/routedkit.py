"""The router side of the operator's integration tests: a router fed from the ConfigMap
the operator renders, and users who ask and rate.

There is no kubelet in the testbed, so :class:`ConfigMapProjector` does the kubelet's
job for a ConfigMap volume: it copies the rendered router config to a local file and maps
the in-pod paths (classifier, signing key) to local files. The router then reloads that
file, as it would reload a mounted ConfigMap. :class:`Traffic` asks simple and complex
questions and rates every answer. :class:`operatorkit.RoutedSystem` puts them together.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from routerkit import COMPLEX_QUERY, SIMPLE_QUERY
from tierguard.api import constants as c
from tierguard.lab.fakeanswers import reads_as_bad
from tierguard.operator import rendermeta

#: requests in flight at once by default: the operator tests' gates wait for samples, and
#: one sender spends most of its time waiting on the router and the fake provider
SENDERS = 3


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
        self.name = rendermeta.object_name(policy)
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
    """Users asking simple and complex questions and rating every answer: ``senders``
    at a time (each waits for its answer), alternating simple and complex by request
    number across all of them."""

    def __init__(
        self,
        router_url: str,
        category: Callable[[str, int], str] | None = None,
        senders: int = SENDERS,
    ) -> None:
        super().__init__(daemon=True)
        self.url = router_url
        #: (tier, request number) -> metadata.category (default: the tier's name)
        self.category = category
        self.senders = senders
        self.stopped = threading.Event()
        self.seen: Counter[tuple[str, str, str]] = Counter()
        self.errors = 0
        self.rng = random.Random(7)
        self._lock = threading.Lock()
        self._numbers = itertools.count()

    def one(self, i: int) -> None:
        tier = "complex" if i % 2 else "simple"
        query = (COMPLEX_QUERY if tier == "complex" else SIMPLE_QUERY) + f" q{i}"
        with self._lock:
            user = f"user-{self.rng.randrange(10**9)}"
        status, body = _post(
            f"{self.url}/v1/chat/completions",
            {
                "model": "auto",
                "user": user,
                "messages": [{"role": "user", "content": query}],
                "metadata": {"category": self.category(tier, i) if self.category else tier},
            },
        )
        if status != 200:
            self._error()
            return
        text = body["choices"][0]["message"]["content"]
        good = not reads_as_bad(text)
        status, _ = _post(
            f"{self.url}/v1/feedback", {"id": body["id"], "rating": "up" if good else "down"}
        )
        with self._lock:
            self.seen[(tier, "good" if good else "bad", str(status))] += 1

    def _error(self) -> None:
        with self._lock:
            self.errors += 1

    def _send(self) -> None:
        while not self.stopped.is_set():
            with self._lock:
                i = next(self._numbers)
            try:
                self.one(i)
            except OSError:
                self._error()
                time.sleep(0.2)

    def run(self) -> None:
        others = [threading.Thread(target=self._send, daemon=True) for _ in range(self.senders - 1)]
        for t in others:
            t.start()
        self._send()
        for t in others:
            t.join(timeout=15)
