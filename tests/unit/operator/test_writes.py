"""Idle means idle: which writes a reconcile needs (pure bookkeeping, no API)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from rolloutsim import T0, Traffic, make_spec

from tierguard.api.enums import Phase
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import Condition, RoutingPolicyStatus
from tierguard.operator import render, rendermeta
from tierguard.operator import rollout as r
from tierguard.operator.gatespecs import gate_specs
from tierguard.operator.gateupdates import fresh_gate_state, update_gates
from tierguard.operator.writes import (
    AppliedObjects,
    compact,
    contains,
    expanded,
    status_needs_write,
)

SAME = {"simple": {"control": 0.1}, "tricky": {"control": 0.1}}
REF = rendermeta.PolicyRef("shop", "team-a", "uid-1")


def _steady(
    spec: RoutingPolicySpec, traffic: Traffic, start: datetime, looks: int
) -> list[tuple[RoutingPolicyStatus, RoutingPolicyStatus]]:
    """Evaluate ``looks`` times with the counters frozen; the status after each look."""
    st = RoutingPolicyStatus()
    out = []
    for i in range(looks):
        now = start + timedelta(minutes=i)
        obs = traffic.observe(spec, now) if r.evaluation_due(spec, st, now) else None
        d = r.reconcile(spec, st, now, generation=1, observations=obs)
        out.append((st, d.status))
        st = d.status
    return out


def test_evaluations_that_find_nothing_new_need_no_write() -> None:
    """No traffic at all (NoData, held with a message naming times, not a countdown),
    and frozen counters (data, but nothing new): once the bake time is over (a real
    change: Progressing's reason), six further looks write nothing."""
    spec = make_spec(noData={"after": "1h", "action": "Pause"})
    for traffic in (Traffic(SAME, seed=1), Traffic(SAME, seed=2)):
        if traffic.seed == 2:
            traffic.tick(5.0, r.step_control_arm(spec, 0))  # some data, then silence
        steps = _steady(spec, traffic, T0, 12)
        writes = [i for i, (old, new) in enumerate(steps) if status_needs_write(old, new)]
        assert writes and writes[-1] <= 5, f"writes at looks {writes}"
        assert steps[-1][1].last_evaluated_at != steps[-2][1].last_evaluated_at, "it looked"


def test_baking_message_carries_a_time_not_a_countdown() -> None:
    spec = make_spec(bakeTime="30m")
    traffic = Traffic(SAME, seed=3, per_minute=400)
    st = RoutingPolicyStatus()
    msgs = []
    for i in range(4):
        now = T0 + timedelta(minutes=i)
        traffic.tick(*r.serving_split(spec, st))
        obs = traffic.observe(spec, now) if r.evaluation_due(spec, st, now) else None
        st = r.reconcile(spec, st, now, generation=1, observations=obs).status
        msgs.append(st.message)
    baking = [m for m in msgs if m.startswith("baking")]
    assert baking and all("left" not in m for m in baking)
    assert all("2026-01-01T00:30:00Z" in m for m in baking), baking


def test_a_change_anywhere_but_last_evaluated_at_is_written() -> None:
    st = RoutingPolicyStatus(message="a")
    assert not status_needs_write(st, st.model_copy(update={"last_evaluated_at": T0}))
    assert status_needs_write(st, st.model_copy(update={"message": "b"}))
    assert status_needs_write(st, st.model_copy(update={"gate_state": {"x": 1}}))


def test_gate_looks_are_capped_so_frozen_counters_leave_state_unchanged() -> None:
    spec = make_spec()
    traffic = Traffic(SAME, seed=4)
    traffic.tick(5.0, r.step_control_arm(spec, 0))
    gates = gate_specs(spec)
    state: dict[str, Any] = fresh_gate_state("rev")
    seen = []
    for _ in range(5):
        state = update_gates(state, gates, traffic.observe(spec, T0), r.step_control_arm(spec, 0))
        seen.append(state)
    assert seen[-1] == seen[-2] == seen[-3]


def test_contains_ignores_server_added_fields_but_sees_edits() -> None:
    spec = make_spec()
    dep = render.deployment(REF, spec)
    live = {
        **dep,
        "metadata": {**dep["metadata"], "uid": "x", "resourceVersion": "7", "managedFields": []},
        "status": {"replicas": 1},
    }
    live["spec"] = {**dep["spec"], "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600}
    container = {**dep["spec"]["template"]["spec"]["containers"][0]}
    container["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["template"] = {
        **dep["spec"]["template"],
        "spec": {**dep["spec"]["template"]["spec"], "containers": [container], "dnsPolicy": "X"},
    }
    assert contains(live, dep)
    edited = {**live, "spec": {**live["spec"], "replicas": 5}}
    assert not contains(edited, dep)
    no_env = {**container, "env": container["env"][:1]}
    assert not contains(
        {**live, "spec": {**live["spec"], "template": {"spec": {"containers": [no_env]}}}}, dep
    )
    assert contains({"a": 1.0, "b": True}, {"a": 1}) and not contains({"b": 1}, {"b": True})


def test_applied_objects_apply_once_until_content_changes_or_drift() -> None:
    spec = make_spec()
    status = RoutingPolicyStatus()
    objs = render.render_all(REF, spec, status)
    applied = AppliedObjects()
    assert not applied.known("team-a", "shop", "uid-1")
    assert applied.due("team-a", "shop", "uid-1", objs) == list(range(len(objs)))
    applied.record("team-a", "shop", "uid-1", objs)
    assert applied.known("team-a", "shop", "uid-1")
    assert applied.due("team-a", "shop", "uid-1", objs) == [], "unchanged: no apply"
    # A new weight changes the ConfigMap only.
    moved = status.model_copy(update={"phase": "Progressing", "revision": "r", "canary_weight": 5})
    objs2 = render.render_all(REF, spec, moved)
    due = applied.due("team-a", "shop", "uid-1", objs2)
    assert [objs2[i]["kind"] for i in due] == ["ConfigMap"]
    applied.record("team-a", "shop", "uid-1", objs2)
    # Our own apply's watch event: no drift. A hand edit or a deletion: drift, re-apply.
    dep = next(o for o in objs2 if o["kind"] == "Deployment")
    name = dep["metadata"]["name"]
    assert not applied.drifted("team-a", "shop", "Deployment", name, dep)
    edited = {**dep, "spec": {**dep["spec"], "replicas": 9}}
    assert applied.drifted("team-a", "shop", "Deployment", name, edited)
    assert [objs2[i]["kind"] for i in applied.due("team-a", "shop", "uid-1", objs2)] == [
        "Deployment"
    ]
    applied.record("team-a", "shop", "uid-1", objs2)
    assert applied.drifted("team-a", "shop", "Deployment", name, None)
    # A recreated policy (new uid) starts from scratch; unknown policies never drift.
    assert len(applied.due("team-a", "shop", "uid-2", objs2)) == len(objs2)
    assert not applied.drifted("team-a", "other", "Deployment", name, None)


def test_an_object_applied_again_is_due_until_recorded() -> None:
    objs = render.render_all(REF, make_spec(), RoutingPolicyStatus())
    applied = AppliedObjects()
    applied.again("team-a", "shop", ("ConfigMap", "x"))  # unknown policy: nothing to do
    assert not applied.known("team-a", "shop", "uid-1")
    applied.record("team-a", "shop", "uid-1", objs)
    cm = next(i for i, o in enumerate(objs) if o["kind"] == "ConfigMap")
    applied.again("team-a", "shop", ("ConfigMap", objs[cm]["metadata"]["name"]))
    assert applied.due("team-a", "shop", "uid-1", objs) == [cm], "the same content, due"
    assert applied.known("team-a", "shop", "uid-1")
    applied.record("team-a", "shop", "uid-1", objs)
    assert applied.due("team-a", "shop", "uid-1", objs) == []


def test_evaluation_delayed_condition_flips_only_on_state_changes() -> None:
    from tierguard.operator.reconcilestatus import delayed_condition

    spec = make_spec()  # interval 1m
    conds: list[Condition] = []
    assert delayed_condition(conds, 30.0, spec, T0, 1) == [], "absent until a delay"
    late = delayed_condition(conds, 90.0, spec, T0, 1)
    assert [(c.type, c.status) for c in late] == [("EvaluationDelayed", "True")]
    later = delayed_condition(late, 200.0, spec, T0 + timedelta(minutes=1), 1)
    assert later == late, "still behind: nothing to write"
    caught_up = delayed_condition(later, 0.0, spec, T0 + timedelta(minutes=2), 1)
    assert [(c.type, c.status) for c in caught_up] == [("EvaluationDelayed", "False")]
    assert delayed_condition(caught_up, 1.0, spec, T0 + timedelta(minutes=3), 1) == caught_up


def test_the_kept_copy_of_a_rendered_object_is_small_and_the_same_object() -> None:
    """Drift checks compare with what :func:`compact` kept: every rendered object comes
    back equal, and kept in a fraction of its JSON."""
    spec = make_spec()
    moved = RoutingPolicyStatus(phase=Phase.PROGRESSING, revision="r", canary_weight=5)
    for status in (RoutingPolicyStatus(), moved):
        objs = render.render_all(REF, spec, status)
        kept = [compact(o) for o in objs]
        assert [expanded(k) for k in kept] == objs
        plain = sum(len(json.dumps(o)) for o in objs)
        assert sum(len(k) for k in kept) < plain / 2
