"""Decision shadow: with a ``shadowClassifier`` in the config the candidate scores every
classified request beside the deciding classifier and the router counts (from, to) in
``tierguard_classifier_transitions_total``; without one nothing extra is loaded or run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from routerkit import COMPLEX_QUERY, SIMPLE_QUERY, router_config
from routerkit import tiny_classifier as tiny_classifier
from tierguard.api import metrics as m
from tierguard.api.routerconfig import RouterConfig
from tierguard.router import decision_id
from tierguard.router.calling import sign
from tierguard.router.chat import parse_chat_request
from tierguard.router.feedback import count_feedback
from tierguard.router.metrics import RouterMetrics
from tierguard.router.pipeline import plan
from tierguard.router.records import Planned
from tierguard.router.runtime import RouterSettings, Runtime, apply_config


def _cells(rt: Runtime) -> dict[tuple[str, str], float]:
    out = {}
    for ln in rt.metrics.exposition().decode().splitlines():
        if ln.startswith(m.CLASSIFIER_TRANSITIONS.name + "{"):
            labels, value = ln.rsplit(" ", 1)
            fields = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1 : -1].split(","))
            assert fields["revision"] == '"r2"'
            out[(fields["from_tier"].strip('"'), fields["to_tier"].strip('"'))] = float(value)
    return out


def _plan(rt: Runtime, text: str, session: str) -> Planned:
    assert rt.state is not None
    body: dict[str, Any] = {"model": "auto", "messages": [{"role": "user", "content": text}]}
    req = parse_chat_request(json.dumps(body).encode())
    p = plan(
        rt.state,
        req,
        request_id=session,
        stickiness_header=None,
        metrics=rt.metrics,
        started=time.monotonic(),
        wall_start=time.time(),
        headers={"x-session-id": session},
    )
    return p


def _ask(rt: Runtime, text: str, session: str) -> str:
    return _plan(rt, text, session).tier


async def test_shadow_counts_transitions_and_the_stable_classifier_decides(
    tiny_classifier: Path,
) -> None:
    doc = {**router_config(tiny_classifier), "revision": "r2"}
    # the candidate: the same model with a threshold that puts everything in "simple"
    doc["shadowClassifier"] = {
        "path": str(tiny_classifier),
        "tiers": [{"name": "simple", "threshold": 0.0}, {"name": "complex"}],
    }
    cfg = RouterConfig.model_validate(doc)
    rt = Runtime(settings=RouterSettings(config=cfg), metrics=RouterMetrics())
    await apply_config(rt, cfg)
    assert rt.state is not None and rt.state.shadow is not None
    # every cell exists at 0 before any request (tiers^2 series)
    assert _cells(rt) == {(a, b): 0.0 for a in ("simple", "complex") for b in ("simple", "complex")}
    assert _ask(rt, COMPLEX_QUERY, "s1") == "complex"  # the stable classifier decides
    assert _ask(rt, SIMPLE_QUERY, "s2") == "simple"
    assert _ask(rt, COMPLEX_QUERY + " again", "s3") == "complex"
    cells = _cells(rt)
    assert cells[("complex", "simple")] == 2.0  # the candidate would move these down
    assert cells[("simple", "simple")] == 1.0
    assert cells[("complex", "complex")] == cells[("simple", "complex")] == 0.0
    # the config without a shadow: the candidate is dropped, nothing more is counted
    plain = RouterConfig.model_validate({**router_config(tiny_classifier), "revision": "r2"})
    await apply_config(rt, plain)
    assert rt.state.shadow is None
    _ask(rt, COMPLEX_QUERY, "s4")
    assert _cells(rt)[("complex", "simple")] == 2.0
    await rt.state.pool.close()


def test_shadow_classifier_must_have_the_same_tiers(tiny_classifier: Path) -> None:
    doc = router_config(tiny_classifier)
    doc["shadowClassifier"] = {"path": str(tiny_classifier), "tiers": [{"name": "simple"}]}
    try:
        RouterConfig.model_validate(doc)
    except ValueError as exc:
        assert "shadowClassifier" in str(exc)
    else:
        raise AssertionError("a shadow classifier with other tiers was accepted")


def _series(rt: Runtime, name: str) -> dict[tuple[str, ...], float]:
    out = {}
    for ln in rt.metrics.exposition().decode().splitlines():
        if ln.startswith(name + "{"):
            labels, value = ln.rsplit(" ", 1)
            fields = dict(kv.split("=", 1) for kv in labels[labels.index("{") + 1 : -1].split(","))
            out[tuple(f"{k}={v.strip(chr(34))}" for k, v in sorted(fields.items()))] = float(value)
    return out


async def test_the_classifier_canary_decides_for_its_sessions_and_carries_the_cell(
    tiny_classifier: Path,
) -> None:
    doc = {**router_config(tiny_classifier), "revision": "r2", "classifierCanaryWeight": 50.0}
    doc["shadowClassifier"] = {
        "path": str(tiny_classifier),
        "tiers": [{"name": "simple", "threshold": 0.0}, {"name": "complex"}],
    }
    cfg = RouterConfig.model_validate(doc)
    rt = Runtime(settings=RouterSettings(config=cfg), metrics=RouterMetrics())
    await apply_config(rt, cfg)
    assert rt.state is not None
    deciders: dict[str, str] = {}
    for i in range(40):
        p = _plan(rt, COMPLEX_QUERY, f"session-{i}")
        assert p.turn is not None and p.turn.classifier_pick is not None
        pick = p.turn.classifier_pick
        assert (pick.from_tier, pick.to_tier) == ("complex", "simple")
        # the candidate's sessions get its tier (and so the cheap route); the others keep
        assert p.tier == ("simple" if pick.decider == m.DECIDER_CANDIDATE else "complex")
        deciders[f"session-{i}"] = pick.decider
        # sticky: the same session, another turn, the same decider
        again = _plan(rt, COMPLEX_QUERY + " more", f"session-{i}")
        assert again.turn is not None and again.turn.classifier_pick is not None
        assert again.turn.classifier_pick.decider == pick.decider
    share = sum(d == m.DECIDER_CANDIDATE for d in deciders.values()) / len(deciders)
    assert 0.2 <= share <= 0.8, share
    # the signed id carries the cell, so feedback is counted per cell and decider
    p = _plan(rt, COMPLEX_QUERY, "session-0")
    did = sign(rt.state, p, "big")
    d = decision_id.verify(did, rt.state.signing_key, now=time.time(), ttl_s=60)
    assert d.cell == ("complex", "simple", deciders["session-0"])
    count_feedback(rt.metrics, [], d, "down")
    fb = _series(rt, m.CLASSIFIER_CELL_FEEDBACK.name)
    key = (
        f"decider={deciders['session-0']}",
        "from_tier=complex",
        "policy=support",
        "rating=down",
        "to_tier=simple",
    )
    assert fb == {key: 1.0}
    # weight 0 (the decision shadow): the stable classifier decides every session
    shadow_only = RouterConfig.model_validate({**doc, "classifierCanaryWeight": 0.0})
    await apply_config(rt, shadow_only)
    for i in range(10):
        p = _plan(rt, COMPLEX_QUERY, f"session-{i}")
        assert p.tier == "complex"
        assert p.turn is not None and p.turn.classifier_pick is not None
        assert p.turn.classifier_pick.decider == m.DECIDER_STABLE
    await rt.state.pool.close()


def test_a_canary_weight_needs_a_shadow_classifier(tiny_classifier: Path) -> None:
    with pytest.raises(ValueError, match="classifierCanaryWeight needs a shadowClassifier"):
        RouterConfig.model_validate({**router_config(tiny_classifier), "classifierCanaryWeight": 5})


async def test_the_billing_trap_classifier_shows_in_the_matrix_as_billing_moved_down() -> None:
    """The built-in ``billing-trap`` model (the default recipe with seed 003's labelling
    mistake) as the candidate beside the shipped default: the decision shadow's matrix
    shows the hard billing_anomaly queries moving complex → simple (about a fifth of them
    on the generator's phrasing, the trained phrasing more), and hardly anything else."""
    from tierguard.classifier.dataset import generate
    from tierguard.classifier.default_model import builtin_model_path

    tiers = [{"name": "simple"}, {"name": "complex"}]
    doc = {
        **router_config(builtin_model_path("default")),
        "revision": "r2",
        "shadowClassifier": {"path": str(builtin_model_path("billing-trap")), "tiers": tiers},
    }
    doc["classifier"] = {"path": str(builtin_model_path("default")), "tiers": tiers}
    cfg = RouterConfig.model_validate(doc)
    rt = Runtime(settings=RouterSettings(config=cfg), metrics=RouterMetrics())
    await apply_config(rt, cfg)
    by_category: dict[str, dict[tuple[str, str], int]] = {}
    for i, ex in enumerate(generate(1000, seed=11, split="all")):
        p = _plan(rt, ex.text, f"s{i}")
        assert p.turn is not None and p.turn.classifier_pick is not None
        pick = p.turn.classifier_pick
        cell = (pick.from_tier, pick.to_tier)
        by_category.setdefault(ex.category, {}).setdefault(cell, 0)
        by_category[ex.category][cell] += 1
    anomaly = by_category["billing_anomaly"]
    moved = anomaly.get(("complex", "simple"), 0) / sum(anomaly.values())
    assert moved >= 0.12, anomaly  # hard billing queries would go to the cheap tier
    others = {
        c: sum(n for (a, b), n in cells.items() if a != b) / sum(cells.values())
        for c, cells in by_category.items()
        if c != "billing_anomaly"
    }
    assert max(others.values()) <= 0.06, others  # elsewhere the two classifiers agree
    assert rt.state is not None
    await rt.state.pool.close()
