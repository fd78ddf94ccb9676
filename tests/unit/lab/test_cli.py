"""The lab CLI's pure helpers and its argument surface."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tierguard.lab.cli import configure, false_rollback_summary, output_dir


def test_output_dir_is_scenario_and_utc_timestamp() -> None:
    when = datetime(2026, 11, 23, 16, 5, 9, tzinfo=UTC)
    assert output_dir(Path("lab-output"), "pareto-trap", when) == Path(
        "lab-output/pareto-trap-20261123-160509"
    )


def test_false_rollback_summary() -> None:
    assert false_rollback_summary(["Promoted", "RolledBack", "Promoted", "Promoted"]) == (
        "1 of 4 runs rolled back (false-rollback rate 25%)"
    )
    assert false_rollback_summary([]) == ""


def test_arguments() -> None:
    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--scenario", "pareto-trap", "--compare-naive"])
    assert args.scenario == "pareto-trap" and args.compare_naive and args.repeat == 1
    assert parser.parse_args([]).scenario == "healthy"
    args = parser.parse_args(["--scenario", "pareto-trap", "--preflight"])
    assert args.preflight and not parser.parse_args([]).preflight
    assert "preflight-trap" in parser.parse_args(["--scenario", "preflight-trap"]).scenario


def test_repetitions_use_fresh_traffic() -> None:
    from tierguard.lab import scenarios as sc
    from tierguard.lab.cli import repetition

    aa = sc.get("aa")
    assert repetition(aa, 0) is aa
    seeds = {repetition(aa, i).traffic.seed for i in range(5)}
    assert len(seeds) == 5
    assert repetition(aa, 3).cheap == aa.cheap


def test_preflight_is_refused_for_the_slice_trap(capsys: pytest.CaptureFixture[str]) -> None:
    """slice-trap judges with the Agreement judge; --preflight needs the pairwise one: the
    CLI says so (exit 2) before it starts anything."""
    from tierguard.lab.cli import run

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(["--scenario", "slice-trap", "--preflight"])
    assert run(args) == 2
    assert "pre-flight needs the pairwise judge" in capsys.readouterr().err
