"""The classifier canary (issue 17 item 5, second stage), without a cluster: after the
decision shadow the new classifier decides for rollout.steps' share of sessions; gates per
transition cell (moved down: thumbs-down of the new classifier's sessions against the
stable classifier's sessions of the same cell; moved up: cost per request); a failing
cell rolls back to the stable classifier; after the last step it decides for all and the
model rollout begins."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from rolloutsim import T0, make_spec

from tierguard.api import constants as c
from tierguard.api import metrics as m
from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.routerconfig import RouterConfig
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import cellgates as cg
from tierguard.operator import decisionshadow as ds
from tierguard.operator import render, rendermeta
from tierguard.operator import rollout as r
from tierguard.operator.gatetypes import Observations
from tierguard.operator.observe_routers import cell_queries

REF = rendermeta.PolicyRef("shop", "default", "uid-1")
S, C = m.DECIDER_STABLE, m.DECIDER_CANDIDATE


def spec(threshold: float = 0.5, **canary: Any) -> RoutingPolicySpec:
    doc = make_spec(
        classifierShadow={"minRequests": 10, "minDuration": "1m", "maxDuration": "30m"},
        classifierCanary={"allowedDrop": 0.05, **canary},
        minSamplesPerArm=100,
    ).to_k8s()
    doc["classifier"]["tiers"][0]["threshold"] = threshold
    return RoutingPolicySpec.model_validate(doc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def counts(
    looks: int,
    bad_stable: float = 0.05,
    bad_candidate: float = 0.05,
    cost: tuple[float, float] = (0.001, 0.001),
) -> cg.CellCounts:
    """``looks`` minutes of traffic: per minute and decider 100 requests in the moved-down
    cell complex→simple, 100 in the moved-up cell simple→tricky, all rated."""
    n = 100.0 * looks
    down, up = ("complex", "simple"), ("simple", "tricky")
    req = {(*cell, d): n for cell in (down, up) for d in (S, C)}
    return cg.CellCounts(
        requests=req,
        rated=dict(req),
        bad={(*down, S): n * bad_stable, (*down, C): n * bad_candidate},
        cost={(*up, S): n * cost[0], (*up, C): n * cost[1]},
    )


def look(sp: RoutingPolicySpec, st: RoutingPolicyStatus, minutes: float, **kw: Any) -> r.Decision:
    cells = kw.pop("cells", None)
    obs = Observations(at=at(minutes), cells=cells, **kw)
    return r.reconcile(sp, st, at(minutes), generation=2, observations=obs)


def config(sp: RoutingPolicySpec, st: RoutingPolicyStatus) -> RouterConfig:
    cm = next(o for o in render.render_all(REF, sp, st) if o["kind"] == "ConfigMap")
    return RouterConfig.model_validate(yaml.safe_load(cm["data"][c.ROUTER_CONFIG_KEY]))


def in_canary(sp: RoutingPolicySpec) -> RoutingPolicyStatus:
    """A threshold change of a running policy, through its decision shadow."""
    st = r.reconcile(spec(0.5), None, T0).status
    st = r.reconcile(sp, st, at(1), generation=2).status
    cells = {("simple", "simple"): 20.0, ("complex", "simple"): 5.0}
    obs = Observations(at=at(3), transitions=ds.TransitionCounts(cells=cells))
    d = r.reconcile(sp, st, at(3), generation=2, observations=obs)
    return d.status


def test_after_the_shadow_the_new_classifier_decides_for_the_first_steps_sessions() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    cc = st.classifier_canary
    assert cc is not None and cc.running and cc.weight == 5.0
    assert st.classifier_shadow is not None and not st.classifier_shadow.running
    assert (st.phase, st.canary_weight, st.step_display) == (
        Phase.PROGRESSING,
        5.0,
        "Classifier 1/3",
    )
    assert st.history[-1].reason == Reason.CLASSIFIER_CANARY.value
    progressing = next(x for x in st.conditions if x.type == ConditionType.PROGRESSING)
    assert progressing.reason == Reason.CLASSIFIER_CANARY.value
    cfg = config(sp, st)
    assert cfg.shadow_classifier is not None and cfg.classifier_canary_weight == 5.0
    assert {s.weight for s in cfg.split} == {5.0}  # the model split as before the edit
    assert st.stable_classifier is not None
    assert st.stable_classifier.settings["tiers"][0]["threshold"] == 0.5


def test_a_healthy_change_steps_through_and_then_decides_for_all() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    weights = []
    events: list[str] = []
    for i in range(1, 40):
        d = look(sp, st, 3 + i, cells=counts(i))
        st = d.status
        events += [e.reason for e in d.events]
        cc = st.classifier_canary
        assert cc is not None
        if cc.running:
            weights.append(cc.weight)
        else:
            break
    assert sorted(set(weights)) == [5.0, 25.0, 50.0]
    assert Reason.CLASSIFIER_PROMOTED.value in events
    assert st.stable_classifier is not None
    assert st.stable_classifier.settings["tiers"][0]["threshold"] == 0.8
    assert (st.phase, st.canary_weight) == (Phase.PROGRESSING, 5.0)  # the model rollout
    cfg = config(sp, st)
    assert cfg.shadow_classifier is None and cfg.classifier_canary_weight == 0.0
    cells = st.classifier_canary.cells if st.classifier_canary else []
    down = next(x for x in cells if x.direction == cg.DOWN)
    assert (down.from_tier, down.to_tier, down.direction, down.verdict) == (
        "complex",
        "simple",
        cg.DOWN,
        "Pass",
    )


def test_requests_moved_down_that_get_worse_answers_roll_back_to_the_stable_classifier() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    for i in range(1, 30):
        d = look(sp, st, 3 + i, cells=counts(i, bad_stable=0.05, bad_candidate=0.35))
        st = d.status
        if st.phase != Phase.PROGRESSING:
            break
    assert st.phase == Phase.ROLLED_BACK
    assert "classifier canary failed at 5% of sessions" in st.message
    assert "cell complex→simple (moved down, quality)" in st.message
    cc = st.classifier_canary
    assert cc is not None and not cc.running
    down = next(x for x in cc.cells if x.direction == cg.DOWN)
    assert down.verdict == "Fail" and down.candidate_bad_rate == pytest.approx(0.35)
    # the stable classifier decides for everyone again; the candidate is not loaded
    cfg = config(sp, st)
    assert cfg.shadow_classifier is None and cfg.classifier_canary_weight == 0.0
    assert next(t.threshold for t in cfg.classifier.tiers if t.name == "simple") == 0.5


def test_requests_moved_up_are_judged_on_cost_when_a_ratio_is_set() -> None:
    sp = spec(0.8, maxCostRatio=2.0)
    st = in_canary(sp)
    for i in range(1, 10):
        st = look(sp, st, 3 + i, cells=counts(i, cost=(0.001, 0.003))).status
        if st.phase != Phase.PROGRESSING:
            break
    assert st.phase == Phase.ROLLED_BACK
    assert "cell simple→tricky (moved up, cost): cost per request x3.00" in st.message
    # without a ratio the cost is reported and does not block
    free = spec(0.8)
    st = in_canary(free)
    st = look(free, st, 4, cells=counts(1, cost=(0.001, 0.003))).status
    st = look(free, st, 5, cells=counts(2, cost=(0.001, 0.003))).status
    cc = st.classifier_canary
    assert cc is not None
    up = next(x for x in cc.cells if x.direction == cg.UP)
    assert up.candidate_cost_per_request == pytest.approx(0.003)
    assert up.stable_cost_per_request == pytest.approx(0.001)


def test_unreadable_counters_hold_and_abort_keeps_the_stable_classifier() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    d = look(sp, st, 4, cells=cg.CellCounts(error="boom"))
    assert "cannot read the cell counters (boom); holding" in d.status.message
    assert d.status.classifier_canary is not None and d.status.classifier_canary.weight == 5.0
    d = r.reconcile(sp, d.status, at(5), generation=2, request=r.ManualRequest("abort", "x"))
    assert d.status.phase == Phase.ROLLED_BACK
    assert "the stable classifier decides for everyone again" in d.status.message
    assert config(sp, d.status).shadow_classifier is None


def test_a_manual_promote_advances_one_classifier_step() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    d = r.reconcile(sp, st, at(4), generation=2, request=r.ManualRequest("promote", "p1"))
    cc = d.status.classifier_canary
    assert cc is not None and cc.running and cc.weight == 25.0


def test_cells_and_queries() -> None:
    tiers = ["simple", "tricky", "complex"]
    assert cg.direction("complex", "simple", tiers) == cg.DOWN
    assert cg.direction("simple", "complex", tiers) == cg.UP
    assert cg.direction("simple", "simple", tiers) is None
    # alpha is shared by every down cell three tiers allow, fixed in advance
    assert cg.alpha_per_cell(0.95, tiers) == pytest.approx(0.05 / 3)
    q = cell_queries("shop")
    assert q["feedback"] == (
        "sum by (from_tier, to_tier, decider, rating) "
        '(tierguard_classifier_cell_feedback_total{policy="shop"})'
    )


def test_kubectl_status_shows_the_matrix_and_the_cells() -> None:
    from tierguard.operator import kubectl_plugin as kp

    sp = spec(0.8)
    st = in_canary(sp)
    st = look(sp, st, 4, cells=counts(1)).status
    st = look(sp, st, 5, cells=counts(2, bad_candidate=0.06)).status
    body = {"metadata": {"namespace": "default"}, "status": st.to_k8s()}
    out = kp.format_status("shop", body, now=at(6))
    assert "decision shadow (done): bundled → bundled   25/10 requests" in out
    assert "moved 20.0% (down 20.0%, up 0.0%)" in out
    assert "FROM (stable)" in out
    assert ["complex", "simple", "5", "20.0%"] in [ln.split() for ln in out.splitlines()]
    assert "classifier canary (running): the new classifier decides for 5% of sessions" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("complex→simple"))
    assert row.split()[:4] == ["complex→simple", "Down", "Inconclusive", "200"]
    # a revision that did not change the classifier shows neither
    plain = r.reconcile(spec(0.5), None, T0).status
    out = kp.format_status("shop", {"metadata": {}, "status": plain.to_k8s()}, now=T0)
    assert "decision shadow" not in out and "classifier canary" not in out


def test_a_stage_without_evidence_pauses_and_a_resume_gives_it_a_new_clock() -> None:
    sp = spec(0.8)
    st = in_canary(sp)
    quiet = cg.CellCounts()  # no traffic reaches the canary
    st = look(sp, st, 4, cells=quiet).status
    d = look(sp, st, 3 + 3 * 60 + 1, cells=quiet)  # maxStepDuration 3h
    assert d.status.phase == Phase.PAUSED
    assert d.status.history[-1].reason == Reason.MAX_STEP_DURATION_EXCEEDED.value
    assert "classifier canary: not enough evidence" in d.status.message
    resumed = r.reconcile(
        sp, d.status, at(200), generation=2, request=r.ManualRequest("resume", "r1")
    ).status
    d = look(sp, resumed, 201, cells=quiet)
    assert d.status.phase == Phase.PROGRESSING  # its clock started again at the resume
    assert "requests decided by it" in d.status.message
