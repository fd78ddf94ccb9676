"""``tierguard lab``: the whole system on this machine, a rollout judged tier by tier.

Starts a real control plane and Prometheus, the operator, fake cheap and capable
providers, the routers (as local processes: there is no kubelet here) and simulated
users; applies the scenario's RoutingPolicy; shows the rollout live; writes a Markdown
report with plots into ``./lab-output/<scenario>-<timestamp>/``. Exit code 0 when the
rollout ended as the scenario expects, 1 when it did not, 2 on a usage error, 130 on
Ctrl-C; any other failure prints the failing part's log tail and exits 1.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

from tierguard.lab import lab_policy as lp
from tierguard.lab import scenario_world as sw
from tierguard.lab import scenarios as sc


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenario",
        default="healthy",
        choices=list(sc.SCENARIOS),
        help="what the simulated world looks like (default: healthy)",
    )
    parser.add_argument(
        "--compare-naive",
        action="store_true",
        help="then rerun the same world with an aggregate-only gate, in the same report",
    )
    parser.add_argument(
        "--preflight",
        action="store_true",
        help=(
            "run pre-flight first: the candidate answers mirrored requests, judged pairwise, "
            "before any user sees it (pareto-trap --preflight: rolled back at pre-flight)"
        ),
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        metavar="N",
        help="run the scenario N times (aa: measures the false-rollback rate)",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("lab-output"),
        help="parent directory of the run's output (default: ./lab-output)",
    )
    parser.add_argument("--replicas", type=int, default=2, help="router replicas (default: 2)")
    parser.add_argument(
        "--rate", type=float, default=None, help="requests per second (default: the scenario's)"
    )
    parser.add_argument(
        "--plain", action="store_true", help="plain progress lines instead of the live view"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the control plane's and Prometheus' workdirs"
    )


def output_dir(parent: Path, scenario: str, now: datetime | None = None) -> Path:
    """``parent/<scenario>-<UTC timestamp>`` (pure, apart from the clock default)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    return parent / f"{scenario}-{stamp}"


def false_rollback_summary(outcomes: list[str]) -> str:
    """One line for --repeat runs of a scenario that should be promoted (pure)."""
    n = len(outcomes)
    rolled = sum(1 for o in outcomes if o == "RolledBack")
    return f"{rolled} of {n} runs rolled back (false-rollback rate {rolled / n:.0%})" if n else ""


def repetition(scenario: sw.Scenario, i: int) -> sw.Scenario:
    """The ``i``-th repetition: a different traffic seed, so repeated runs (and their
    false-rollback count) are independent samples, not the same requests again (pure)."""
    if i == 0:
        return scenario
    traffic = dataclasses.replace(scenario.traffic, seed=scenario.traffic.seed + 1000 * i)
    return dataclasses.replace(scenario, traffic=traffic)


def run(args: argparse.Namespace) -> int:
    from tierguard.lab.live import LiveView
    from tierguard.lab.processes import LabError, install_signal_handlers
    from tierguard.lab.report import write_report
    from tierguard.lab.report_figures import expectation_met
    from tierguard.lab.supervisor import Lab, LabSettings

    if args.repeat < 1:
        print("--repeat must be at least 1", file=sys.stderr)
        return 2
    scenario = sc.get(args.scenario)
    suffix = "-preflight" if args.preflight and not scenario.preflight else ""
    if args.preflight:
        try:
            scenario = sc.preflight_variant(scenario)
        except sw.ScenarioError as exc:
            print(f"tierguard lab: {exc}", file=sys.stderr)
            return 2
    out = output_dir(args.output, scenario.name + suffix)
    out.mkdir(parents=True, exist_ok=True)
    install_signal_handlers()
    view = LiveView(tty=False if args.plain else None)
    settings = LabSettings(
        out_dir=out, replicas=args.replicas, requests_per_second=args.rate, keep_workdirs=args.keep
    )
    view.message(f"[lab] scenario {scenario.name}: {scenario.title}")
    view.message(f"[lab] output: {out}")
    ok = True
    try:
        with Lab(settings, view) as lab:
            outcomes: list[str] = []
            for i in range(args.repeat):
                name = lp.POLICY_NAME if args.repeat == 1 else f"{lp.POLICY_NAME}-{i + 1}"
                record = lab.run(repetition(scenario, i), policy=name)
                if args.compare_naive:
                    lab.delete_policy(name)
                    lab.stop_routers()
                    view.message("[lab] rerunning the same world with an aggregate-only gate")
                    record.naive = lab.run(sc.naive_variant(scenario))
                target = out if args.repeat == 1 else out / f"run-{i + 1:02d}"
                path = write_report(record, target)
                outcomes.append(str(record.final_status.get("phase")))
                met = expectation_met(record)
                if record.naive is not None:
                    met = met and record.naive.final_status.get("phase") == "Promoted"
                ok = ok and met
                view.message(
                    f"[lab] {scenario.name}: {record.final_status.get('phase')} "
                    f"({'as expected' if met else 'NOT as expected'}); report: {path}"
                )
                view.message(record.kubectl_line.rstrip())
                if args.repeat > 1:
                    lab.delete_policy(name)
                    lab.stop_routers()
            if args.repeat > 1:
                line = false_rollback_summary(outcomes)
                (out / "summary.md").write_text(
                    f"# {scenario.name} × {args.repeat}\n\n{line}\n\n"
                    + "\n".join(f"- run {i + 1}: {o}" for i, o in enumerate(outcomes))
                    + "\n"
                )
                view.message(f"[lab] {line}")
    except KeyboardInterrupt:
        print("\n[lab] interrupted: every process the lab started is stopped", file=sys.stderr)
        return 130
    except SystemExit:  # SIGTERM/SIGHUP, turned into SystemExit by install_signal_handlers
        print(
            "\n[lab] stopped by a signal: every process the lab started is stopped", file=sys.stderr
        )
        raise
    except LabError as exc:
        print(f"\n[lab] FAILED: {exc}", file=sys.stderr)
        print(f"[lab] logs: {out / 'logs'}", file=sys.stderr)
        return 1
    return 0 if ok else 1
