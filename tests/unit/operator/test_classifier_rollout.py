"""Classifier changes as a rollout (issue 17 items 4 and 6), without a cluster: the
revision follows the classifier's content, unknown content holds, a router on another
digest holds the stage, and the routers mount an immutable copy named by digest."""

from __future__ import annotations

import base64
import itertools
from datetime import timedelta
from typing import Any

from rolloutsim import T0, Traffic, make_spec

from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import render, rendermeta
from tierguard.operator import rollout as r
from tierguard.operator import rollout_classifier as rc
from tierguard.operator.gatetypes import Observations
from tierguard.operator.observe_routers import parse_reports
from tierguard.operator.promreader import PrometheusReader
from tierguard.operator.writes import status_needs_write

SAME = {t: {"control": 0.05, "canary": 0.05} for t in ("simple", "tricky")}
MODEL_A = b"model-a-bytes"
MODEL_B = b"model-b-bytes"


def cm_spec(name: str = "clf", **rollout: object) -> RoutingPolicySpec:
    doc = make_spec(**rollout).to_k8s()
    doc["classifier"]["source"] = {"configMapRef": {"name": name, "key": "model.onnx"}}
    return RoutingPolicySpec.model_validate(doc)


def configmap(model: bytes) -> dict[str, Any]:
    return {"binaryData": {"model.onnx": base64.b64encode(model).decode()}}


def on_target(st: RoutingPolicyStatus, n: int = 2) -> cc.RouterReports:
    return cc.RouterReports(
        tuple(cc.RouterReport(f"r{i}", st.classifier_digest, st.revision) for i in range(n))
    )


def drive(
    spec: RoutingPolicySpec,
    traffic: Traffic,
    minutes: int,
    lookup: cc.ClassifierLookup,
    st: RoutingPolicyStatus | None = None,
    *,
    start_minute: int = 0,
    routers: Any = on_target,
) -> tuple[RoutingPolicyStatus, list[r.Decision]]:
    st = st or RoutingPolicyStatus()
    out = []
    for i in range(start_minute, start_minute + minutes):
        now = T0 + timedelta(minutes=i)
        weight, arm = r.serving_split(spec, st)
        traffic.tick(weight, arm)
        obs = None
        if r.evaluation_due(spec, st, now):
            obs = traffic.observe(spec, now)
            obs = Observations(at=obs.at, gates=obs.gates, routers=routers(st))
        d = r.reconcile(spec, st, now, generation=1, observations=obs, classifier=lookup)
        out.append(d)
        st = RoutingPolicyStatus.model_validate(d.status.to_k8s())
    return st, out


def cond(st: RoutingPolicyStatus) -> Any:
    return next(c for c in st.conditions if c.type == ConditionType.CLASSIFIER_RESOLVED)


def test_lookup_digests_content_not_the_reference() -> None:
    a = cc.lookup(cm_spec("clf"), configmap(MODEL_A))
    renamed = cc.lookup(cm_spec("clf-v2"), configmap(MODEL_A))
    edited = cc.lookup(cm_spec("clf"), configmap(MODEL_B))
    assert a.digest and a.digest == renamed.digest != edited.digest
    b64 = configmap(MODEL_A)["binaryData"]["model.onnx"]
    assert a.model == cc.FrozenModel("model.onnx", "binaryData", b64)
    missing_key = cc.lookup(cm_spec(), {"data": {"other": "x"}})
    assert missing_key.unknown and "no key 'model.onnx'" in (missing_key.error or "")
    assert cc.lookup(make_spec(), None) == cc.BUNDLED


def test_edited_bytes_restart_at_the_first_step_same_bytes_renamed_do_not() -> None:
    spec = cm_spec()
    a = cc.lookup(spec, configmap(MODEL_A))
    st, _ = drive(spec, Traffic(SAME, seed=3), 240, a)
    assert st.phase == Phase.PROMOTED, st.message
    assert st.classifier_digest == a.digest
    revision, step = st.revision, st.step
    # The same bytes under a new ConfigMap name: nothing restarts.
    renamed = cm_spec("clf-copy")
    same = cc.lookup(renamed, configmap(MODEL_A))
    d = r.reconcile(renamed, st, T0 + timedelta(minutes=240), generation=2, classifier=same)
    assert (d.status.revision, d.status.step) == (revision, step)
    assert Reason.ROLLOUT_STARTED.value not in [e.reason for e in d.events]
    # New bytes in the source: a new revision from the first step, which for a classifier
    # change is its decision shadow (0 % exposure; the stable classifier A decides).
    edited = cc.lookup(spec, configmap(MODEL_B))
    d = r.reconcile(spec, st, T0 + timedelta(minutes=241), generation=2, classifier=edited)
    assert d.status.revision != revision and d.status.step == 0
    assert d.status.phase == Phase.PROGRESSING
    assert d.status.classifier_digest == edited.digest
    assert d.status.canary_weight == 95.0  # the model split stays as promoted
    assert d.status.stable_classifier is not None
    assert d.status.stable_classifier.digest == a.digest
    assert [e.reason for e in d.events] == [
        Reason.ROLLOUT_STARTED.value,
        Reason.CLASSIFIER_SHADOW_STARTED.value,
    ]
    # Without the decision shadow the new classifier decides at step 1 at once.
    off = cm_spec(classifierShadow={"enabled": False}, classifierCanary={"enabled": False})
    d = r.reconcile(off, st, T0 + timedelta(minutes=241), generation=2, classifier=edited)
    assert (d.status.step, d.status.canary_weight) == (0, 5.0)
    assert [e.reason for e in d.events] == [Reason.ROLLOUT_STARTED.value]
    assert d.status.stable_classifier is not None
    assert d.status.stable_classifier.digest == edited.digest


def test_a_threshold_edit_is_a_new_revision() -> None:
    spec = cm_spec()
    st = r.reconcile(spec, None, T0, classifier=cc.lookup(spec, configmap(MODEL_A))).status
    doc = spec.to_k8s()
    doc["classifier"]["tiers"][0]["threshold"] = 0.6
    edited = RoutingPolicySpec.model_validate(doc)
    d = r.reconcile(edited, st, T0, classifier=cc.lookup(edited, configmap(MODEL_A)))
    assert d.status.revision != st.revision and d.status.classifier_digest != st.classifier_digest


def test_unreadable_classifier_is_unknown_and_holds_never_restarts() -> None:
    spec = cm_spec()
    a = cc.lookup(spec, configmap(MODEL_A))
    st, _ = drive(spec, Traffic(SAME, seed=3), 20, a)
    assert st.phase == Phase.PROGRESSING
    assert cond(st).status == "True" and cond(st).reason == Reason.CLASSIFIER_READ
    gone = cc.lookup(spec, None, "ConfigMap ns/clf not found")
    held, ds = drive(spec, Traffic(SAME, seed=4), 200, gone, st, start_minute=20)
    assert (held.revision, held.step, held.classifier_digest) == (st.revision, st.step, a.digest)
    assert held.phase == Phase.PROGRESSING
    c = cond(held)
    assert (c.status, c.reason) == ("False", Reason.CLASSIFIER_UNKNOWN)
    assert "ConfigMap ns/clf not found" in c.message and "holds at step" in c.message
    assert "ConfigMap ns/clf not found" in held.message
    events = [e.reason for d in ds for e in d.events]
    assert events == [Reason.CLASSIFIER_UNKNOWN.value], "one Warning, no restart, no advance"
    # Readable again, same bytes: the rollout goes on from where it held.
    back, _ = drive(spec, Traffic(SAME, seed=4), 1, a, held, start_minute=220)
    assert back.revision == st.revision and cond(back).status == "True"


def test_unknown_from_the_start_stays_pending() -> None:
    spec = cm_spec()
    d = r.reconcile(spec, None, T0, classifier=cc.lookup(spec, None, "forbidden"))
    assert d.status.phase == Phase.PENDING and d.status.revision == ""
    assert "forbidden" in d.status.message
    assert cond(d.status).status == "False"


def test_a_router_on_another_digest_holds_the_stage() -> None:
    """Evidence gathered while one replica runs the old classifier never counts, and the
    step never advances; once all are on target the stage counts again."""
    spec = cm_spec()
    a = cc.lookup(spec, configmap(MODEL_A))

    def one_old(st: RoutingPolicyStatus) -> cc.RouterReports:
        return cc.RouterReports(
            (
                cc.RouterReport("r0", st.classifier_digest, st.revision),
                cc.RouterReport("r1", "0ld0ld0ld0ld0ld0", st.revision),
            )
        )

    st, ds = drive(spec, Traffic(SAME, seed=3), 120, a, routers=one_old)
    assert (st.phase, st.step) == (Phase.PROGRESSING, 0)
    assert "1/2 router(s) not on classifier" in st.message
    assert "r1 on 0ld0ld0ld0ld0ld0" in st.message
    for entry in st.gate_state["gates"].values():
        assert entry["stats"]["counts"][1] == 0.0, "no evidence counted while held"
    assert Reason.ROUTERS_NOT_ON_TARGET.value in [e.reason for d in ds for e in d.events]
    converged, _ = drive(spec, Traffic(SAME, seed=3), 60, a, st, start_minute=120)
    assert converged.step >= 1, converged.message


def test_a_held_stage_writes_nothing_per_look_and_bakes_again_after_the_hold() -> None:
    """While held, consecutive looks leave status as it was (no API write per look); the
    first look with every router on target starts the bake time again from then."""
    spec = cm_spec(bakeTime="10m", maxStepDuration="3h")
    a = cc.lookup(spec, configmap(MODEL_A))

    def one_old(st: RoutingPolicyStatus) -> cc.RouterReports:
        return cc.RouterReports((cc.RouterReport("r0", "0ld0ld0ld0ld0ld0", st.revision),))

    st, ds = drive(spec, Traffic(SAME, seed=3), 30, a, routers=one_old)
    held = [d.status for d in ds[5:]]
    assert all(x.message.endswith(rc.HOLD_SUFFIX) for x in held)
    writes = sum(status_needs_write(x, y) for x, y in itertools.pairwise(held))
    # one: the Progressing condition's reason once the first bake time is over
    assert writes <= 1, f"{writes} status writes in {len(held)} held looks"
    assert (st.phase, st.step) == (Phase.PROGRESSING, 0)
    after, ds2 = drive(spec, Traffic(SAME, seed=3), 3, a, st, start_minute=30)
    released = ds2[0].status
    assert released.earliest_advance_at is not None
    assert released.earliest_advance_at >= T0 + timedelta(minutes=30 + 10)
    assert after.step == 0, "no step before a whole bake time with every router on target"


def test_a_router_on_an_old_revision_holds_and_a_long_hold_pauses() -> None:
    spec = cm_spec(maxStepDuration="30m")
    a = cc.lookup(spec, configmap(MODEL_A))

    def stale(st: RoutingPolicyStatus) -> cc.RouterReports:
        return cc.RouterReports((cc.RouterReport("r0", st.classifier_digest, "oldrev"),))

    st, _ = drive(spec, Traffic(SAME, seed=3), 40, a, routers=stale)
    assert st.phase == Phase.PAUSED
    assert st.history[-1].reason == Reason.ROUTERS_NOT_ON_TARGET.value
    assert "not on revision" in st.message


def test_routers_hold_rules() -> None:
    rep = cc.RouterReport
    ok = cc.RouterReports((rep("a", "d1", "r"), rep("b", "d1", "r")))
    assert cc.routers_hold(ok, "d1", "r", True) is None
    assert cc.routers_hold(ok, "", "r", True) is None, "bundled: all on one digest"
    mixed = cc.RouterReports((rep("a", "d1", "r"), rep("b", "d2", "r")))
    assert "1/2 router(s) not on one classifier" in (cc.routers_hold(mixed, "", "r", True) or "")
    assert "b on d2" in (cc.routers_hold(mixed, "d1", "r", False) or "")
    assert cc.routers_hold(cc.RouterReports(), "d1", "r", False) is None
    assert "no router reports" in (cc.routers_hold(cc.RouterReports(), "d1", "r", True) or "")
    assert "boom" in (cc.routers_hold(cc.RouterReports(error="boom"), "d1", "r", False) or "")


def test_info_series_parse_into_reports() -> None:
    rows = [
        {"metric": {"instance": "a:1", "digest": "d1", "revision": "r"}, "value": [0, "1"]},
        {"metric": {"instance": "b:1", "digest": "d0", "revision": "r"}, "value": [0, "0"]},
    ]
    assert parse_reports(rows).reports == (cc.RouterReport("a:1", "d1", "r"),)


def test_routers_mount_the_immutable_copy_named_by_digest() -> None:
    spec = cm_spec()
    a = cc.lookup(spec, configmap(MODEL_A))
    st = r.reconcile(spec, None, T0, classifier=a).status
    ref = rendermeta.PolicyRef("shop", "ns", "uid-1")
    objs = render.render_all(ref, spec, st, classifier=a.model)
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    copy = by_name[("ConfigMap", f"shop-classifier-{a.digest[:10]}")]
    assert copy["immutable"] is True
    assert copy["binaryData"] == configmap(MODEL_A)["binaryData"]
    assert copy["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    kinds = [o["kind"] for o in objs]
    assert kinds.index("Deployment") > [k for k in kinds].index("ConfigMap")
    dep = by_name[("Deployment", "shop-router")]
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["classifier"]["configMap"]["name"] == f"shop-classifier-{a.digest[:10]}"
    # Not read this time: no copy rendered, the Deployment still mounts the frozen one.
    again = render.render_all(ref, spec, st)
    assert ("ConfigMap", f"shop-classifier-{a.digest[:10]}") not in {
        (o["kind"], o["metadata"]["name"]) for o in again
    }
    assert render.deployment(ref, spec, st) == dep
    # Never read yet: the source is mounted (pods wait for it like any ConfigMap).
    fresh = render.deployment(ref, spec, RoutingPolicyStatus())
    vols = {v["name"]: v for v in fresh["spec"]["template"]["spec"]["volumes"]}
    assert vols["classifier"]["configMap"]["name"] == "clf"


class _Reader(PrometheusReader):
    """Answers every query with ``rows`` (asks no server)."""

    identity = ("http://prom", "", False)

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self.rows = rows
        self.asked: list[str] = []

    def query(self, promql: str) -> list[dict[str, Any]]:
        self.asked.append(promql)
        return self.rows


def test_info_query_is_shared_by_every_policy_per_round() -> None:
    from tierguard.operator.observe_routers import observe_routers
    from tierguard.operator.shared_queries import SharedQueries

    rows = [
        {
            "metric": {"policy": p, "instance": f"{p}:1", "digest": p, "revision": "r"},
            "value": [0, "1"],
        }
        for p in ("a", "b")
    ]
    reader = _Reader(rows)
    shared = SharedQueries(max_age=60.0)
    a = observe_routers(reader, "a", shared=shared)
    b = observe_routers(reader, "b", shared=shared)
    assert a.reports == (cc.RouterReport("a:1", "a", "r"),)
    assert b.reports == (cc.RouterReport("b:1", "b", "r"),)
    assert reader.asked == ['tierguard_classifier_info{policy!=""}']
    own = observe_routers(_Reader(rows[:1]), "a")
    assert own.reports == a.reports
