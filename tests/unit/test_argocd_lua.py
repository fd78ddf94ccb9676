"""The Argo CD health check and resource actions, run as Lua (lupa) in a sandbox shaped
like Argo CD's: Lua 5.1 semantics, only base functions, ``table`` and a safe ``os``
(``time``, ``date``); no ``string`` library, no I/O. Status fixtures are built from the
API models, so a renamed status field breaks these tests rather than the Argo CD UI."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from argocdkit import LUA_DIR, NOW, Lua
from tierguard.api.constants import ANNOTATION_ACTION, ANNOTATION_ACTION_NONCE
from tierguard.api.enums import Action, ConditionType, Phase, Reason, Verdict
from tierguard.api.status import Condition, RoutingPolicyStatus, TierStatus

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def lua() -> Lua:
    return Lua()


def policy(status: RoutingPolicyStatus | None, generation: int = 3) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "tierguard.io/v1alpha1",
        "kind": "RoutingPolicy",
        "metadata": {
            "name": "support",
            "namespace": "llm",
            "generation": generation,
            "resourceVersion": "4711",
        },
        "spec": {},
    }
    if status is not None:
        obj["status"] = status.to_k8s()
    return obj


def cond(ctype: ConditionType, status: str, reason: Reason, message: str = "") -> Condition:
    return Condition(
        type=ctype,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=T0,
        observed_generation=3,
    )


def status_for(phase: Phase, **extra: Any) -> RoutingPolicyStatus:
    base: dict[str, Any] = {
        "observed_generation": 3,
        "phase": phase,
        "step": 1,
        "steps": 5,
        "step_display": "2/5",
        "canary_weight": 10.0,
        "verdict_summary": "simple=Inconclusive",
        "tiers": [TierStatus(tier="simple", verdict=Verdict.INCONCLUSIVE)],
    }
    base.update(extra)
    return RoutingPolicyStatus(**base)


#: Every phase and the Argo CD health it must map to. A new Phase fails
#: test_every_phase_is_mapped until someone decides its health here and in health.lua.
EXPECTED: dict[Phase, str] = {
    Phase.PENDING: "Progressing",
    Phase.PROGRESSING: "Progressing",
    Phase.PAUSED: "Suspended",
    Phase.PROMOTED: "Healthy",
    Phase.ROLLED_BACK: "Degraded",
    Phase.FAILED: "Degraded",
}


def test_every_phase_is_mapped() -> None:
    assert set(EXPECTED) == set(Phase)


@pytest.mark.parametrize("phase", list(Phase))
def test_health_per_phase(lua: Lua, phase: Phase) -> None:
    hs = lua.run(LUA_DIR / "health.lua", policy(status_for(phase, message=f"now {phase}")))
    assert hs["status"] == EXPECTED[phase]
    assert hs["status"] != "Unknown"
    assert f"now {phase}" in hs["message"]


def test_progressing_message_says_where_the_rollout_is(lua: Lua) -> None:
    hs = lua.run(LUA_DIR / "health.lua", policy(status_for(Phase.PROGRESSING, message="")))
    assert hs["status"] == "Progressing"
    assert "step 2/5" in hs["message"]
    assert "canary weight 10%" in hs["message"]
    assert "simple=Inconclusive" in hs["message"]


def test_no_status_is_progressing(lua: Lua) -> None:
    hs = lua.run(LUA_DIR / "health.lua", policy(None))
    assert hs["status"] == "Progressing"
    assert "observe" in hs["message"]


def test_stale_generation_is_progressing_even_when_promoted(lua: Lua) -> None:
    """A new spec (e.g. a new candidate) is not Healthy until the operator has seen it."""
    stale = status_for(Phase.PROMOTED, observed_generation=2)
    hs = lua.run(LUA_DIR / "health.lua", policy(stale, generation=3))
    assert hs["status"] == "Progressing"
    assert "generation 3" in hs["message"]


def test_empty_status_object_is_progressing(lua: Lua) -> None:
    obj = policy(None)
    obj["status"] = {}
    hs = lua.run(LUA_DIR / "health.lua", obj)
    assert hs["status"] == "Progressing"


def test_pending_with_message(lua: Lua) -> None:
    hs = lua.run(
        LUA_DIR / "health.lua",
        policy(status_for(Phase.PENDING, message="waiting for routers to become ready")),
    )
    assert hs["status"] == "Progressing"
    assert hs["message"] == "Pending: waiting for routers to become ready"


def test_pending_and_ready_without_candidate_is_healthy(lua: Lua) -> None:
    """A policy with no candidate has nothing to roll out; it must not spin forever."""
    st = status_for(
        Phase.PENDING,
        message="no candidate",
        conditions=[cond(ConditionType.READY, "True", Reason.NO_CANDIDATE)],
    )
    hs = lua.run(LUA_DIR / "health.lua", policy(st))
    assert hs["status"] == "Healthy"


def test_pending_without_candidate_is_healthy_by_progressing_reason(lua: Lua) -> None:
    st = status_for(
        Phase.PENDING,
        message="no route has a candidate: nothing to roll out",
        conditions=[cond(ConditionType.PROGRESSING, "False", Reason.NO_CANDIDATE)],
    )
    hs = lua.run(LUA_DIR / "health.lua", policy(st))
    assert hs["status"] == "Healthy"
    assert "nothing to roll out" in hs["message"]


def test_failed_uses_degraded_condition_message(lua: Lua) -> None:
    st = status_for(
        Phase.FAILED,
        message="",
        conditions=[
            cond(
                ConditionType.DEGRADED,
                "True",
                Reason.RECONCILE_FAILED,
                "Secret llm-provider-keys not found",
            )
        ],
    )
    hs = lua.run(LUA_DIR / "health.lua", policy(st))
    assert hs["status"] == "Degraded"
    assert "Secret llm-provider-keys not found" in hs["message"]


def test_unknown_phase_is_degraded_not_unknown(lua: Lua) -> None:
    obj = policy(status_for(Phase.PROGRESSING))
    obj["status"]["phase"] = "Hibernating"
    hs = lua.run(LUA_DIR / "health.lua", obj)
    assert hs["status"] == "Degraded"
    assert "Hibernating" in hs["message"]


# --------------------------------------------------------------------------- actions

#: The phases in which the operator carries an action out (tierguard.operator.rollout);
#: in any other phase it records InvalidAction, so the UI should not offer it.
ENABLED: dict[Phase, set[str]] = {
    Phase.PENDING: set(),
    Phase.PROGRESSING: {"promote", "abort", "pause"},
    Phase.PAUSED: {"promote", "abort", "resume"},
    Phase.PROMOTED: {"abort"},
    Phase.ROLLED_BACK: {"retry"},
    Phase.FAILED: set(),
}


def test_every_action_has_a_script() -> None:
    scripts = {p.stem for p in (LUA_DIR / "actions").glob("*.lua")} - {"discovery"}
    assert scripts == {a.value for a in Action}


@pytest.mark.parametrize("phase", list(Phase))
def test_discovery_enables_actions_by_phase(lua: Lua, phase: Phase) -> None:
    assert set(ENABLED) == set(Phase)
    actions = lua.run(LUA_DIR / "actions" / "discovery.lua", policy(status_for(phase)))
    assert set(actions) == {a.value for a in Action}
    enabled = {name for name, a in actions.items() if not a["disabled"]}
    assert enabled == ENABLED[phase]


def test_discovery_without_status_offers_nothing_but_abort_is_off(lua: Lua) -> None:
    actions = lua.run(LUA_DIR / "actions" / "discovery.lua", policy(None))
    assert all(a["disabled"] for a in actions.values())


def _empty_as_none(value: Any) -> Any:
    """An empty Lua table is both [] and {}; Argo CD has the same ambiguity."""
    if isinstance(value, dict):
        return {k: _empty_as_none(v) for k, v in value.items()} or None
    if isinstance(value, list):
        return [_empty_as_none(v) for v in value] or None
    return value


@pytest.mark.parametrize("action", list(Action))
def test_action_sets_annotation_and_fresh_nonce(lua: Lua, action: Action) -> None:
    obj = policy(status_for(Phase.PAUSED))
    out = lua.run(LUA_DIR / "actions" / f"{action.value}.lua", obj)
    ann = out["metadata"]["annotations"]
    assert ann[ANNOTATION_ACTION] == action.value
    assert ann[ANNOTATION_ACTION_NONCE] == f"argocd-{NOW}-4711"
    # Nothing else changes: the operator owns status, Git owns spec.
    assert _empty_as_none(out["status"]) == _empty_as_none(obj["status"])
    assert out["metadata"]["name"] == "support"


def test_action_keeps_other_annotations_and_replaces_an_old_nonce(lua: Lua) -> None:
    obj = policy(status_for(Phase.PAUSED))
    obj["metadata"]["annotations"] = {
        "team": "support",
        ANNOTATION_ACTION: "pause",
        ANNOTATION_ACTION_NONCE: "old",
    }
    out = lua.run(LUA_DIR / "actions" / "resume.lua", obj)
    ann = out["metadata"]["annotations"]
    assert ann["team"] == "support"
    assert ann[ANNOTATION_ACTION] == "resume"
    assert ann[ANNOTATION_ACTION_NONCE] != "old"


def test_scripts_use_no_string_library() -> None:
    """Argo CD does not open the string library unless useOpenLibs is set."""
    for path in LUA_DIR.rglob("*.lua"):
        code = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("--")
        )
        assert "string." not in code, path
        assert ":sub(" not in code and ":format(" not in code and ":find(" not in code, path


# --------------------------------------------------------------------------- argocd-cm


def _gen_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "gen_packaging", ROOT / "scripts" / "gen_packaging.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_argocd_cm_snippet_is_fresh() -> None:
    gen = _gen_module()
    committed = (ROOT / "examples" / "argocd" / "argocd-cm.yaml").read_text()
    assert committed == gen.render_argocd_cm(), "run `python scripts/gen_packaging.py`"


def test_argocd_cm_snippet_carries_the_tested_scripts(lua: Lua) -> None:
    """The snippet users paste is exactly what the tests above ran."""
    cm = yaml.safe_load((ROOT / "examples" / "argocd" / "argocd-cm.yaml").read_text())
    data = cm["data"]
    assert (
        data["resource.customizations.health.tierguard.io_RoutingPolicy"]
        == (LUA_DIR / "health.lua").read_text()
    )
    actions = yaml.safe_load(data["resource.customizations.actions.tierguard.io_RoutingPolicy"])
    assert actions["discovery.lua"] == (LUA_DIR / "actions" / "discovery.lua").read_text()
    names = [d["name"] for d in actions["definitions"]]
    assert names == [a.value for a in Action]
    for d in actions["definitions"]:
        assert d["action.lua"] == (LUA_DIR / "actions" / f"{d['name']}.lua").read_text()
