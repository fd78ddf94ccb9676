"""``tierguard router --workers 2``: two router processes on one port (SO_REUSEPORT),
metrics summed over both for Prometheus, graceful shutdown of both."""

from __future__ import annotations

import json
import signal
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from routerkit import SIMPLE_QUERY, fake_provider, http, router_config, router_process
from routerkit import tiny_classifier as tiny_classifier

pytestmark = pytest.mark.timeout(120)

REQUESTS = "tierguard_requests_total"
DURATION_COUNT = "tierguard_request_duration_seconds_count"
WEIGHT = "tierguard_canary_weight_percent"


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` with ``labels`` in an exposition."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{"):
            pairs = dict(p.split("=", 1) for p in line[len(name) + 1 : line.index("}")].split(","))
            if all(pairs.get(k) == f'"{v}"' for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(k) for k in (task / "children").read_text().split()]
    return out


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def chat(url: str, i: int, stream: bool = False) -> tuple[int, bytes]:
    body = {
        "model": "auto",
        "stream": stream,
        "user": f"user-{i}",
        "messages": [{"role": "user", "content": f"{SIMPLE_QUERY} {i}"}],
    }
    req = urllib.request.Request(
        f"{url}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Connection": "close"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.read()


def wait_for_workers(log: Path, n: int) -> None:
    """Until every worker has said it listens (the first one ready makes /readyz answer;
    a request only reaches a worker once it listens)."""
    import time

    for _ in range(300):
        text = log.read_text()
        if all(f"worker {i}: tierguard router serving" in text for i in range(1, n + 1)):
            return
        time.sleep(0.1)
    raise AssertionError(f"not every worker started:\n{log.read_text()}")


@pytest.fixture
def workers(tiny_classifier: Path, tmp_path: Path) -> Iterator[dict[str, Any]]:
    shared = tmp_path / "metrics"
    with fake_provider(tmp_path, "fake", {"models": {"*": {"latency_median_s": 0.0}}}) as fake:
        cfg = router_config(
            tiny_classifier,
            big_url=f"{fake}/v1",
            small_url=f"{fake}/v1",
            weight=30,
            shadow={"sampleRate": 0.0},
        )
        with router_process(
            tmp_path, cfg, args=["--workers", "2"], env={"PROMETHEUS_MULTIPROC_DIR": str(shared)}
        ) as (url, _, proc):
            wait_for_workers(tmp_path / "router.log", 2)
            yield {"url": url, "proc": proc, "fake": fake, "shared": shared}


def test_two_workers_serve_and_metrics_count_every_request_once(
    workers: dict[str, Any],
) -> None:
    url, proc, shared = workers["url"], workers["proc"], workers["shared"]
    pids = children(proc.pid)
    assert len(pids) == 2 and all(alive(p) for p in pids)
    sent = 60
    for i in range(sent):  # a new connection each: the kernel spreads them over workers
        status, _ = chat(url, i, stream=i % 3 == 0)
        assert status == 200
    # both workers served (each keeps its own counter file) ...
    files = {f.name for f in shared.glob("counter_*.db")}
    assert {f"counter_{p}.db" for p in pids} <= files
    # ... and every scrape, whichever worker answers it, has the pod's totals
    for _ in range(6):
        status, text = http("GET", f"{url}/metrics")
        assert status == 200
        assert sample(text, REQUESTS) == sent
        assert sample(text, DURATION_COUNT) == sent
        # the gauge is configuration: once per tier, not summed over workers
        assert sample(text, WEIGHT, tier="simple") == 30
        assert text.count(f'{WEIGHT}{{policy="support",tier="simple"}}') == 1
        assert sample(text, "tierguard_classifier_info") == 1  # one series, value 1
        assert "Multiprocess metric" not in text  # the contract's help texts are kept
    # a decision id from one worker is accepted by all (no signing key is configured:
    # the supervisor gives its workers one random key)
    _, answer = chat(url, 1000)
    did = json.loads(answer)["id"]
    for _ in range(8):  # new connections: both workers get some of them
        status, reply = http("POST", f"{url}/v1/feedback", {"id": did, "rating": "up"})
        assert status == 200, reply
    sent += 1
    # counters only grow: more requests, higher totals
    for i in range(10):
        chat(url, sent + i)
    assert sample(http("GET", f"{url}/metrics")[1], REQUESTS) == sent + 10


def test_sigterm_drains_both_workers(workers: dict[str, Any]) -> None:
    url, proc, fake = workers["url"], workers["proc"], workers["fake"]
    pids = children(proc.pid)
    assert len(pids) == 2
    for model in ("big-1", "small-1"):  # answers now take a second
        status, _ = http("PATCH", f"{fake}/admin/profile/{model}", {"latency_median_s": 1.0})
        assert status == 200
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda i=i: results.append(chat(url, i)[0])) for i in range(4)
    ]
    for t in threads:
        t.start()
    import time

    time.sleep(0.4)  # the requests are in flight (readiness-style wait, no timed assertion)
    proc.send_signal(signal.SIGTERM)
    for t in threads:
        t.join(timeout=30)
    assert results == [200, 200, 200, 200]  # in-flight requests were answered
    assert proc.wait(timeout=30) == 0
    assert not any(alive(p) for p in pids)
