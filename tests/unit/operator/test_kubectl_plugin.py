"""The kubectl plugin's pure parts: tables and the annotation patch."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from rolloutsim import T0, Traffic, drive, make_spec

from tierguard.api import constants as c
from tierguard.api.enums import Action
from tierguard.operator import kubectl_plugin as kp


def body() -> dict[str, Any]:
    spec = make_spec()
    bad = {"simple": {"control": 0.1, "canary": 0.1}, "tricky": {"control": 0.1, "canary": 0.3}}
    st, _ = drive(spec, Traffic(bad, seed=1), 30)
    return {"metadata": {"name": "shop", "namespace": "a"}, "status": st.to_k8s()}


def test_status_table_names_tier_signal_and_verdicts() -> None:
    out = kp.format_status("shop", body(), now=T0 + timedelta(minutes=31))
    assert "RolledBack" in out
    assert "tricky" in out and "ThumbsDown" in out and "Fail" in out
    lines = [ln for ln in out.splitlines() if ln.startswith("simple") or ln.startswith("tricky")]
    assert len(lines) == 2


def test_status_shows_the_pairwise_judge_table() -> None:
    b = body()
    sig = b["status"]["tiers"][1]["signals"][0]
    sig["judge"] = {
        "judged": 400,
        "worse": 30,
        "better": 10,
        "ties": 360,
        "inconsistent": 250,
        "errors": 4,
        "orderInconsistencyRate": 0.625,
        "errorRate": 0.01,
        "healthy": False,
    }
    out = kp.format_status("shop", b, now=T0 + timedelta(minutes=31))
    assert "pairwise judge" in out
    (row,) = [ln for ln in out.splitlines() if ln.startswith("tricky") and "UNHEALTHY" in ln]
    assert row.split()[2:6] == ["400", "30", "10", "360"] and "250 (62.5%)" in row
    assert "pairwise judge" not in kp.format_status("shop", body(), now=T0)


def test_history_lists_transitions() -> None:
    out = kp.format_history(body())
    assert "RolloutStarted" in out and "GateFailed" in out


def test_action_patch_touches_only_annotations_with_a_fresh_nonce() -> None:
    a = kp.action_patch(Action.ABORT)
    b = kp.action_patch(Action.ABORT)
    assert set(a) == {"metadata"} and set(a["metadata"]) == {"annotations"}
    assert a["metadata"]["annotations"][c.ANNOTATION_ACTION] == "abort"
    assert (
        a["metadata"]["annotations"][c.ANNOTATION_ACTION_NONCE]
        != b["metadata"]["annotations"][c.ANNOTATION_ACTION_NONCE]
    )
    assert (
        kp.action_patch(Action.PROMOTE, "x")["metadata"]["annotations"][c.ANNOTATION_ACTION_NONCE]
        == "x"
    )


def test_parser_knows_every_command() -> None:
    p = kp.build_parser()
    for cmd in ["status", "history", "watch", *[a.value for a in Action]]:
        assert p.parse_args([cmd, "shop"]).command == cmd


def test_status_shows_pre_flight_spend_and_win_tie_loss() -> None:
    b = body()
    b["status"]["preflight"] = {
        "state": "Running",
        "spendUSD": 3.5,
        "maxSpendUSD": 20,
        "message": "pre-flight running: 0 users exposed",
        "tiers": [
            {
                "tier": "tricky",
                "verdict": "Inconclusive",
                "sampleRate": 0.25,
                "judge": {"judged": 120, "worse": 9, "better": 4, "ties": 107, "errors": 2},
            }
        ],
    }
    out = kp.format_status("shop", b, now=T0 + timedelta(minutes=31))
    assert "pre-flight: Running   spent $3.50 of $20.00" in out
    (row,) = [ln for ln in out.splitlines() if ln.startswith("tricky") and "25%" in ln]
    assert row.split()[1:7] == ["25%", "Inconclusive", "120", "4", "107", "9"]


def test_status_shows_the_classifier_digest_and_why_it_is_unknown() -> None:
    b = body()
    assert "classifier " not in kp.format_status("shop", b, now=T0)
    b["status"]["classifierDigest"] = "0123456789abcdef"
    b["status"]["conditions"].append(
        {
            "type": "ClassifierResolved",
            "status": "False",
            "reason": "ClassifierUnknown",
            "message": "cannot read the classifier",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
    )
    b["status"]["judgePromptDigest"] = "fedcba9876543210"
    out = kp.format_status("shop", b, now=T0)
    assert "classifier 0123456789abcdef" in out and "judge prompt fedcba9876543210" in out
    assert any("ClassifierResolved" in ln and "ClassifierUnknown" in ln for ln in out.splitlines())


def test_status_view_groups_by_tier_then_slice() -> None:
    doc = body()
    tiers = doc["status"]["tiers"]
    tier = dict(tiers[0])
    sig = dict(tier["signals"][0])
    tier["signals"] = [
        {**sig, "slice": "category=refunds"},
        {**sig, "slice": "category=billing_status", "verdict": "Fail"},
        sig,
    ]
    doc["status"]["tiers"] = [tier, *tiers[1:]]
    out = kp.format_status("shop", doc, now=T0 + timedelta(minutes=31))
    rows = [ln.split() for ln in out.splitlines() if ln.startswith(tier["tier"] + " ")]
    assert [r[1] for r in rows] == ["-", "category=billing_status", "category=refunds"]
    assert "SLICE" in out
