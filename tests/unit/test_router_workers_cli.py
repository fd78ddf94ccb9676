"""The pure parts of ``tierguard router --workers N``: the workers' command line, exit
statuses, the shared metrics directory and decision-log batches for a shared pipe."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tierguard.router import cli, workers
from tierguard.router.decision_log import pipe_batches
from tierguard.router.metrics import MULTIPROC_ENV


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    "argv",
    [
        ["--config", "/etc/r.yaml", "--workers", "4", "--port", "9000", "--event-loop", "uvloop"],
        ["--configmap", "r", "--namespace", "ns", "--workers", "2", "--log-level", "debug"],
    ],
)
def test_workers_run_the_supervisors_arguments(argv: list[str]) -> None:
    args = parse(argv)
    worker = workers.worker_argv(args)
    assert worker[0] == "router" and "--workers" not in worker
    again = parse(worker[1:])
    for name in ("config", "configmap", "namespace", "port", "event_loop", "log_level"):
        assert getattr(again, name) == getattr(args, name)
    assert again.workers == 1 or again.workers == args.workers  # from the environment


def test_workers_flag_default_and_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERGUARD_ROUTER_WORKERS", raising=False)
    assert parse(["--config", "x"]).workers == 1
    with pytest.raises(SystemExit):
        parse(["--config", "x", "--workers", "0"])
    with pytest.raises(SystemExit):
        parse(["--config", "x", "--workers", "65"])


def test_exit_status_never_reports_success_for_a_worker_that_stopped() -> None:
    assert workers.exit_status(2) == 2
    assert workers.exit_status(0) == 1
    assert workers.exit_status(-9) == 1
    assert workers.exit_status(None) == 1


def test_metrics_dir_is_emptied_of_old_metric_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "counter_1.db").write_bytes(b"old")
    (tmp_path / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    path, temporary = workers.metrics_dir()
    assert (path, temporary) == (str(tmp_path), False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_metrics_dir_without_the_variable_is_a_new_temporary_dir(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    path, temporary = workers.metrics_dir()
    try:
        assert temporary and Path(path).is_dir() and not any(Path(path).iterdir())
    finally:
        Path(path).rmdir()


def test_pipe_batches_hold_whole_lines_within_the_limit() -> None:
    lines = [f'{{"n":{i},"pad":"{"x" * (i % 50)}"}}' for i in range(300)]
    batches = pipe_batches(lines, limit=512)
    assert "".join(batches) == "\n".join(lines) + "\n"
    assert all(len(b.encode()) <= 512 and b.endswith("\n") for b in batches)
    assert len(batches) > 1
    long = "y" * 1000
    assert pipe_batches(["a", long, "b"], limit=512) == ["a\n", long + "\n", "b\n"]
