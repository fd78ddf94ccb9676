"""The decision shadow of a classifier change (issue 17 item 5, first stage), without a
cluster: a classifier change starts at 0 % with both classifiers loaded and the stable one
deciding; the transition matrix becomes moved shares and a projected cost change in
status; it ends after minRequests and minDuration (or at maxDuration, with a Warning),
then the new classifier decides and step 1 begins; an abort leaves the old one deciding."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from rolloutsim import T0, make_spec

from tierguard.api import constants as c
from tierguard.api.enums import ConditionType, Phase, Reason
from tierguard.api.policy import RoutingPolicySpec
from tierguard.api.routerconfig import RouterConfig
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import decisionshadow as ds
from tierguard.operator import render, render_classifier, rendermeta
from tierguard.operator import rollout as r
from tierguard.operator.gatetypes import Observations
from tierguard.operator.observe_routers import transitions_query

REF = rendermeta.PolicyRef("shop", "default", "uid-1")
SHADOW = {"minRequests": 100, "minDuration": "5m", "maxDuration": "30m"}


def spec_with(
    threshold: float = 0.5, canary: dict[str, Any] | None = None, **shadow: Any
) -> RoutingPolicySpec:
    """(the classifier canary that follows the shadow is off unless ``canary`` is given:
    these tests are about the shadow; test_classifier_canary.py is about the canary)"""
    doc = make_spec(
        classifierShadow={**SHADOW, **shadow}, classifierCanary=canary or {"enabled": False}
    ).to_k8s()
    doc["classifier"]["tiers"][0]["threshold"] = threshold
    doc["models"][0]["pricing"] = {"inputPerMillionTokens": 10, "outputPerMillionTokens": 30}
    doc["models"][1]["pricing"] = {"inputPerMillionTokens": 1, "outputPerMillionTokens": 3}
    return RoutingPolicySpec.model_validate(doc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def look(
    spec: RoutingPolicySpec,
    st: RoutingPolicyStatus,
    minutes: float,
    cells: Mapping[tuple[str, str], float] | None = None,
    error: str | None = None,
) -> r.Decision:
    counts = ds.TransitionCounts(cells=cells or {}, error=error)
    obs = Observations(at=at(minutes), transitions=counts)
    return r.reconcile(spec, st, at(minutes), generation=2, observations=obs)


def config(spec: RoutingPolicySpec, st: RoutingPolicyStatus) -> RouterConfig:
    objs = render.render_all(REF, spec, st)
    cm = next(o for o in objs if o["kind"] == "ConfigMap")
    return RouterConfig.model_validate(yaml.safe_load(cm["data"][c.ROUTER_CONFIG_KEY]))


def thresholds(cfg: Any) -> float | None:
    found: float | None = next(t.threshold for t in cfg.tiers if t.name == "simple")
    return found


def shadowing() -> tuple[RoutingPolicySpec, RoutingPolicyStatus, r.Decision]:
    """A policy promoted on threshold 0.5 whose threshold is then edited to 0.8."""
    old = spec_with(0.5)
    st = r.reconcile(old, None, T0).status
    assert st.stable_classifier is not None and st.classifier_shadow is None  # first one
    new = spec_with(0.8)
    d = r.reconcile(new, st, at(1), generation=2)
    return new, d.status, d


def test_a_classifier_change_starts_with_a_shadow_where_the_stable_classifier_decides() -> None:
    new, st, d = shadowing()
    # the model split stays what it was (step 1 at 5 % before the edit)
    assert (st.phase, st.step, st.canary_weight) == (Phase.PROGRESSING, 0, 5.0)
    assert st.step_display == "Shadow/4"
    assert st.classifier_shadow is not None and st.classifier_shadow.running
    assert st.classifier_shadow.min_requests == 100
    assert [e.reason for e in d.events] == [
        Reason.ROLLOUT_STARTED.value,
        Reason.CLASSIFIER_SHADOW_STARTED.value,
    ]
    progressing = next(x for x in st.conditions if x.type == ConditionType.PROGRESSING)
    assert progressing.reason == Reason.CLASSIFIER_SHADOW.value
    cfg = config(new, st)
    assert thresholds(cfg.classifier) == 0.5  # the stable classifier decides
    assert cfg.shadow_classifier is not None and thresholds(cfg.shadow_classifier) == 0.8
    assert {s.tier: s.weight for s in cfg.split} == {"simple": 5.0, "tricky": 5.0}


def test_the_matrix_becomes_shares_and_cost_and_the_shadow_ends_after_both_minimums() -> None:
    new, st, _ = shadowing()
    # 60 complex requests the candidate would send to simple: down; 10 simple -> tricky: up
    few = {("simple", "simple"): 20, ("complex", "simple"): 6, ("simple", "tricky"): 1}
    d = look(new, st, 2, few)
    sh = d.status.classifier_shadow
    assert sh is not None and sh.running and sh.requests == 27
    assert "waiting: 27/100 requests counted" in d.status.message
    cells = {("simple", "simple"): 200, ("complex", "simple"): 60, ("simple", "tricky"): 10}
    cells[("complex", "complex")] = 130
    d = look(new, d.status, 3, cells)  # enough requests, minDuration not over
    sh = d.status.classifier_shadow
    assert sh is not None and sh.running and sh.requests == 400
    assert sh.moved_share == pytest.approx(70 / 400)
    assert sh.down_share == pytest.approx(60 / 400)
    assert sh.up_share == pytest.approx(10 / 400)
    # simple and tricky are priced at their candidate "small" (4 $/M), complex at "big" (40)
    assert sh.projected_cost_change == pytest.approx(6280 / 8440 - 1)
    assert (sh.cells[0].from_tier, sh.cells[0].to_tier, sh.cells[0].requests) == (
        "simple",
        "simple",
        200,
    )
    assert "minDuration 5m ends at" in d.status.message
    assert d.status.canary_weight == 5.0  # held as it was
    d = look(new, d.status, 6.5, cells)
    st = d.status
    assert st.classifier_shadow is not None and not st.classifier_shadow.running
    assert st.classifier_shadow.finished_at == at(6.5)
    finished = [e for e in d.events if e.reason == Reason.CLASSIFIER_SHADOW_FINISHED.value]
    assert len(finished) == 1 and finished[0].type == "Normal"
    assert "17.5% would move to another tier (15.0% down, 2.5% up)" in finished[0].message
    assert "largest complex→simple 15.0%; projected cost -25.6%" in finished[0].message
    # the new classifier decides now, and the revision's rollout begins at step 1
    assert (st.phase, st.step, st.canary_weight) == (Phase.PROGRESSING, 0, 5.0)
    assert st.stable_classifier is not None
    assert st.stable_classifier.settings["tiers"][0]["threshold"] == 0.8
    cfg = config(new, st)
    assert thresholds(cfg.classifier) == 0.8 and cfg.shadow_classifier is None


def test_projected_cost_uses_each_tiers_baseline_prices() -> None:
    prices = {"simple": 4.0, "tricky": 10.0, "complex": 40.0}
    fig = ds.summarize(
        {("complex", "simple"): 50, ("complex", "complex"): 50, ("simple", "simple"): 100},
        ["simple", "tricky", "complex"],
        prices,
    )
    # before: 100*40 + 100*4 = 4400; after: 50*4 + 50*40 + 100*4 = 2600
    assert fig.projected_cost_change == pytest.approx(2600 / 4400 - 1)
    assert (fig.requests, fig.down_share, fig.up_share) == (200, 0.25, 0.0)
    # cells of unknown tiers (a removed tier's old series) are left out
    assert ds.summarize({("gone", "simple"): 5}, ["simple"], {}).requests == 0


def test_max_duration_ends_it_with_a_warning_and_a_query_error_only_waits() -> None:
    new, st, _ = shadowing()
    d = look(new, st, 10, error="boom")
    assert d.status.classifier_shadow is not None and d.status.classifier_shadow.running
    assert "cannot read the transitions (boom)" in d.status.message
    d = look(new, d.status, 32, {("simple", "simple"): 40})
    ended = [e for e in d.events if e.reason == Reason.CLASSIFIER_SHADOW_FINISHED.value]
    assert ended and ended[0].type == "Warning" and "40/100 requests counted" in ended[0].message
    assert d.status.canary_weight == 5.0


def test_an_abort_during_the_shadow_leaves_the_stable_classifier_deciding() -> None:
    new, st, _ = shadowing()
    d = r.reconcile(new, st, at(2), generation=2, request=r.ManualRequest("abort", "n1"))
    assert d.status.phase == Phase.ROLLED_BACK
    assert "no user was served by the new classifier (decision shadow)" in d.status.message
    cfg = config(new, d.status)
    assert thresholds(cfg.classifier) == 0.5 and cfg.shadow_classifier is None


def test_a_manual_promote_ends_the_shadow() -> None:
    new, st, _ = shadowing()
    d = r.reconcile(new, st, at(2), generation=2, request=r.ManualRequest("promote", "n1"))
    assert d.status.classifier_shadow is not None and not d.status.classifier_shadow.running
    assert (d.status.step, d.status.canary_weight) == (0, 5.0)
    assert d.status.stable_classifier is not None
    assert d.status.stable_classifier.settings["tiers"][0]["threshold"] == 0.8


def test_a_configmap_change_mounts_both_frozen_copies_during_the_shadow() -> None:
    doc = spec_with().to_k8s()
    doc["classifier"]["source"] = {"configMapRef": {"name": "clf", "key": "model.onnx"}}
    spec = RoutingPolicySpec.model_validate(doc)

    def lookup(model: bytes) -> cc.ClassifierLookup:
        return cc.lookup(spec, {"binaryData": {"model.onnx": base64.b64encode(model).decode()}})

    a, b = lookup(b"model-a"), lookup(b"model-b")
    st = r.reconcile(spec, None, T0, classifier=a).status
    st = r.reconcile(spec, st, at(1), generation=2, classifier=b).status
    assert st.classifier_shadow is not None and st.classifier_shadow.running
    assert (st.classifier_shadow.stable_digest, st.classifier_shadow.candidate_digest) == (
        a.digest,
        b.digest,
    )
    dep = next(o for o in render.render_all(REF, spec, st) if o["kind"] == "Deployment")
    vols = {
        v["name"]: v["configMap"]["name"]
        for v in dep["spec"]["template"]["spec"]["volumes"]
        if "configMap" in v
    }
    assert vols == {
        "classifier": render_classifier.classifier_copy_name("shop", a.digest),
        "classifier-candidate": render_classifier.classifier_copy_name("shop", b.digest),
    }
    cfg = config(spec, st)
    assert cfg.classifier.path == "/etc/tierguard/classifier/model.onnx"
    assert cfg.shadow_classifier is not None
    assert cfg.shadow_classifier.path == "/etc/tierguard/classifier-candidate/model.onnx"


def test_no_shadow_when_disabled_or_when_the_tiers_change() -> None:
    old = spec_with(0.5)
    st = r.reconcile(old, None, T0).status
    off = spec_with(0.8, enabled=False)
    d = r.reconcile(off, st, at(1), generation=2)
    assert d.status.classifier_shadow is None and d.status.canary_weight == 5.0
    doc = spec_with(0.5).to_k8s()
    doc["classifier"]["tiers"][1]["name"] = "medium"
    doc["routes"][1]["tier"] = "medium"
    doc["analysis"]["slos"][1]["tier"] = "medium"
    renamed = RoutingPolicySpec.model_validate(doc)
    d = r.reconcile(renamed, st, at(1), generation=2)
    assert d.status.classifier_shadow is None and d.status.canary_weight == 5.0


def test_the_transitions_query_names_the_revision() -> None:
    q = transitions_query("shop", "abc123", ("namespace", "prod"))
    assert q == (
        "sum by (from_tier, to_tier) (tierguard_classifier_transitions_total"
        '{policy="shop", namespace="prod", revision="abc123"})'
    )


def test_max_down_share_pauses_before_the_new_classifier_decides_and_resume_goes_on() -> None:
    old = spec_with(0.5)
    st = r.reconcile(old, None, T0).status
    new = spec_with(0.8, maxDownShare=0.1)
    st = r.reconcile(new, st, at(1), generation=2).status
    cells = {("simple", "simple"): 200, ("complex", "simple"): 60, ("complex", "complex"): 140}
    d = look(new, st, 7, cells)  # 15 % down > 10 %
    st = d.status
    assert st.phase == Phase.PAUSED and st.canary_weight == 5.0
    assert st.history[-1].reason == Reason.CLASSIFIER_SHADOW_MOVED.value
    assert "15.0% of requests would move to a cheaper tier" in st.message
    assert st.classifier_shadow is not None and st.classifier_shadow.held
    # both classifiers stay loaded, the stable one deciding, while a person looks
    cfg = config(new, st)
    assert thresholds(cfg.classifier) == 0.5 and cfg.shadow_classifier is not None
    d = look(new, st, 8, cells)  # looks while paused change nothing
    assert d.status.phase == Phase.PAUSED
    resumed = r.reconcile(
        new, d.status, at(9), generation=2, request=r.ManualRequest("resume", "n")
    )
    st = resumed.status
    d = look(new, st, 10, cells)
    assert d.status.phase == Phase.PROGRESSING and d.status.canary_weight == 5.0
    assert d.status.classifier_shadow is not None and not d.status.classifier_shadow.running
    # under the limit it only reports
    relaxed = spec_with(0.8, maxDownShare=0.2)
    st = r.reconcile(relaxed, r.reconcile(old, None, T0).status, at(1), generation=2).status
    d = look(relaxed, st, 7, cells)
    assert d.status.phase == Phase.PROGRESSING and d.status.canary_weight == 5.0
