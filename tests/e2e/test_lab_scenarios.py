"""End to end: the lab's `healthy`, `pareto-trap`, `preflight-trap`, `slice-trap` and
`threshold-trap` scenarios on the real system.

Everything is real except the LLM providers (fake, by design) and the kubelet (the lab
runs the router Deployment's pod template as local processes). Outcomes are asserted from
the RoutingPolicy's status as the API server returns it -- what `kubectl get -o yaml`
would show an SRE -- never from the lab's own bookkeeping. The report files are checked
for existence and for the figures they must carry.

One lab session (control plane, Prometheus, operator) serves every scenario; each
scenario gets its own policy name, so Prometheus series and gate state never mix.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tierguard.lab import scenarios as sc
from tierguard.lab.live import LiveView
from tierguard.lab.report import PLOT_FILES, REPORT_FILE, write_report
from tierguard.lab.supervisor import Lab, LabSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, lab_prerequisites: None) -> Iterator[Lab]:
    out = tmp_path_factory.mktemp("lab-output")
    view = LiveView(io.StringIO(), tty=False)
    with Lab(LabSettings(out_dir=out), view) as session:
        yield session


def _run(lab: Lab, name: str, out: Path) -> tuple[dict[str, Any], str]:
    """Run a scenario, then read the policy back through the API and write the report."""
    body, text, _ = _run_with_events(lab, name, out)
    return body, text


def _run_with_events(lab: Lab, name: str, out: Path) -> tuple[dict[str, Any], str, list[str]]:
    """:func:`_run`, plus the messages of the policy's Events (read before it is deleted)."""
    policy = f"e2e-{name}"
    scenario = sc.get(name)
    record = lab.run(scenario, policy=policy)
    body = lab.policy_body(policy)
    events = lab.cp.kubectl(
        "get", "events", "-n", lab.settings.namespace, "-o", "json",
        "--field-selector", f"involvedObject.name={policy}", check=False,
    )  # fmt: skip
    messages = [
        str(e.get("message", "")) for e in json.loads(events.stdout or "{}").get("items", [])
    ]
    report = write_report(record, out)
    lab.delete_policy(policy)
    lab.stop_routers()
    if scenario.traffic.conversations:
        _check_conversations(record.tally, weight_only_rose=name == "healthy")
    return body, report.read_text(), messages


def _check_conversations(tally: Any, *, weight_only_rose: bool) -> None:
    """Every scenario: no conversation's tier drops and no tool result reaches a model that
    did not issue the call; while the weight only rose, no conversation left the canary.
    (Around a rollback the users' stage token trails the routers by up to a status poll,
    so a move back to the baseline in that second is not judged here.)"""
    conv = tally["conversations"]
    assert conv["conversations"] > 0 and conv["agent_conversations"] > 0
    assert conv["tool_result_requests"] > 0
    assert (conv["unsafe_switches"], conv["tier_drops"]) == (0, 0)
    if weight_only_rose:
        assert tally["arm_switches"] == 0


def _check_report_files(out: Path, text: str) -> None:
    assert (out / REPORT_FILE).is_file()
    for plot in PLOT_FILES:
        data = (out / plot).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, plot
        assert f"]({plot})" in text
    assert "$ kubectl get routingpolicies" in text
    assert "| total cost |" in text and "cost per 1,000 satisfied requests" in text


def test_healthy_is_promoted_and_saves_money(lab: Lab, tmp_path: Path) -> None:
    body, text = _run(lab, "healthy", tmp_path)
    status = body["status"]
    assert status["phase"] == "Promoted", status.get("message")
    assert status["canaryWeight"] >= 100 - body["spec"]["rollout"]["holdbackPercent"]
    reasons = [h["reason"] for h in status["history"]]
    assert "Promoted" in reasons
    assert not any(s["verdict"] == "Fail" for t in status["tiers"] for s in t["signals"])
    _check_report_files(tmp_path, text)
    assert "**Promoted**" in text and "as expected" in text
    assert "## Conversations" in text
    saving = text.split("Saving: **", 1)[1].split("**", 1)[0]
    assert saving.endswith("%") and float(saving.rstrip("%")) > 0


def test_pareto_trap_is_rolled_back_early_with_the_tier_named(lab: Lab, tmp_path: Path) -> None:
    body, text = _run(lab, "pareto-trap", tmp_path)
    status = body["status"]
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["canaryWeight"] == 0
    simple = next(t for t in status["tiers"] if t["tier"] == "simple")
    assert simple["verdict"] == "Fail"
    failed = [s["signal"] for s in simple["signals"] if s["verdict"] == "Fail"]
    # the judge sees the canary disagree with the baseline on the failing category
    assert "ShadowDisagreement" in failed, simple
    rollback = [h for h in status["history"] if h["phase"] == "RolledBack"]
    assert rollback, status["history"]
    # an early stage: the rollback happened at the 5 % or 10 % step (history records the
    # step it happened at; the weight after a rollback is 0)
    assert rollback[-1]["step"] <= 1, rollback[-1]
    assert "simple" in (rollback[-1].get("message", "") + status.get("message", ""))
    _check_report_files(tmp_path, text)
    assert "**RolledBack**" in text and "tier `simple`" in text


def test_preflight_trap_is_rolled_back_at_pre_flight_with_zero_users_exposed(
    lab: Lab, tmp_path: Path
) -> None:
    """Issue 16: pareto-trap's world with pre-flight on. The candidate only ever answers
    mirrored requests; the simple tier's pairwise gate fails on them and the rollout is
    rolled back at pre-flight, before the first weighted step."""
    body, text = _run(lab, "preflight-trap", tmp_path)
    status = body["status"]
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["canaryWeight"] == 0 and "0 users exposed" in status["message"]
    reasons = [h["reason"] for h in status["history"]]
    assert "PreFlightFailed" in reasons and "PreFlightPassed" not in reasons, reasons
    assert all(float(h.get("weight") or 0) == 0 for h in status["history"]), status["history"]
    pf = status["preflight"]
    assert pf["state"] == "Failed"
    simple = next(t for t in pf["tiers"] if t["tier"] == "simple")
    judge = simple["judge"]
    assert simple["verdict"] == "Fail" and judge["healthy"], simple
    assert judge["judged"] > 0 and judge["worse"] > judge["better"], judge
    assert 0 < pf["spendUSD"] <= pf["maxSpendUSD"], pf
    _check_report_files(tmp_path, text)
    assert "rolled back at pre-flight (0 % exposure)" in text and "as expected" in text
    # the simulated users' own count: no answer any of them saw came from the cheap model
    assert "**0 users** were served by the candidate (`cheap` answered 0 of" in text
    assert "| simple | **Fail** |" in text and "Spend: **$" in text


def test_slice_trap_is_rolled_back_naming_the_slice_while_the_tier_looks_fine(
    lab: Lab, tmp_path: Path
) -> None:
    """Issue 17: a 15-point loss in opening_hours, about 10 % of the simple tier. The
    slice `topic` takes its value from the classifier's category head; the slice gate
    fails while the tier's own gate on the same signal does not, and the rollback, the
    status and the Events name the slice. Time-scaled: first step 40 %, about two minutes."""
    body, text, events = _run_with_events(lab, "slice-trap", tmp_path)
    status = body["status"]
    assert status["phase"] == "RolledBack", status.get("message")
    assert status["canaryWeight"] == 0
    simple = next(t for t in status["tiers"] if t["tier"] == "simple")
    by_key = {(s["signal"], s.get("slice")): s for s in simple["signals"]}
    sliced = by_key[("ShadowDisagreement", "topic=opening_hours")]
    tier_own = by_key[("ShadowDisagreement", None)]
    assert sliced["verdict"] == "Fail", sliced
    assert tier_own["verdict"] != "Fail", tier_own  # the tier looks fine
    assert tier_own["canary"]["rate"] <= tier_own["allowed"] < sliced["canary"]["rate"]
    # the slice is a small part of the tier's judged canary answers (about 10 %)
    share = sliced["canary"]["samples"] / tier_own["canary"]["samples"]
    assert 0.05 <= share <= 0.2, share
    rollback = [h for h in status["history"] if h["phase"] == "RolledBack"]
    assert rollback and rollback[-1]["step"] <= 1, status["history"]
    named = "slice topic=opening_hours"
    assert named in rollback[-1].get("message", "") + status.get("message", "")
    assert any(named in m for m in events), events
    _check_report_files(tmp_path, text)
    assert "## The tier and its slices" in text
    assert "slice `topic=opening_hours`: **Fail**" in text
    assert "**RolledBack**" in text and "as expected" in text


def test_threshold_trap_is_rolled_back_at_the_classifier_canarys_first_step(
    lab: Lab, tmp_path: Path
) -> None:
    """Issue 17: a few seconds into the model canary the simple tier's threshold is lowered
    (a classifier change). The decision shadow counts complex queries moving to simple;
    the classifier canary lets the new classifier decide for half of the sessions, the
    moved-down cell complex→simple gets worse thumbs (the cheap model answers hard billing
    queries) and fails at the canary's first step; the stable classifier decides again."""
    body, text = _run(lab, "threshold-trap", tmp_path)
    status = body["status"]
    assert status["phase"] == "RolledBack", status.get("message")
    shadow = status["classifierShadow"]
    assert not shadow["running"] and shadow["requests"] >= shadow["minRequests"], shadow
    cells = {(c["from"], c["to"]): c["requests"] for c in shadow["cells"]}
    assert cells[("complex", "simple")] > 0 and shadow["downShare"] > 0, shadow
    # a threshold lowered on the simple tier moves nothing up
    assert cells.get(("simple", "complex"), 0) <= 0.01 * cells[("simple", "simple")], cells
    canary = status["classifierCanary"]
    assert not canary["running"] and canary["step"] == 0, canary  # its first step
    failed = [c for c in canary["cells"] if c["verdict"] == "Fail"]
    assert [(c["from"], c["to"]) for c in failed] == [("complex", "simple")], canary
    assert failed[0]["candidateBadRate"] > failed[0]["stableBadRate"], failed
    rollback = [h for h in status["history"] if h["phase"] == "RolledBack"]
    assert rollback and "classifier canary failed" in rollback[-1]["message"], rollback
    assert "cell complex→simple" in rollback[-1]["message"]
    assert [h["reason"] for h in status["history"]].count("ClassifierPromoted") == 0
    _check_report_files(tmp_path, text)
    assert "## The classifier change" in text and "| stable ↓ / new → |" in text
    assert "Cell `complex→simple` **failed** at its step 1" in text
    assert "the classifier canary was rolled back at its step 1/1 (its first stage)" in text
    assert "**RolledBack**" in text and "as expected" in text
