"""The rollout machine's manual actions (part of :mod:`tierguard.operator.rollout`, kept
apart to keep that module readable; pure, like the machine).

An action comes from the ``tierguard.io/action`` annotation with a nonce; each (action,
nonce) is handled once -- the last ``MAX_HANDLED_ACTIONS`` are remembered in status -- so
an annotation GitOps re-applies never acts again. An action that does not fit the phase
is ignored with a Warning Event that says why.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tierguard.api.enums import Action, Phase, PreFlightState, Reason
from tierguard.api.status import MAX_HANDLED_ACTIONS, HandledAction
from tierguard.operator import preflight as pf
from tierguard.operator import rollout_clfcanary as ccn
from tierguard.operator import rollout_shadow as rs
from tierguard.operator.rollout_types import ManualRequest, fmt_weight

if TYPE_CHECKING:
    from tierguard.operator.rollout import _Run


def handled_before(run: _Run, request: ManualRequest) -> bool:
    """Whether this (action, nonce) was handled already (without a nonce: at this
    generation). Checked against every remembered action, not just the last one."""
    s = run.s
    action, nonce = request.action[:64], request.nonce[:256]
    remembered = [*s.handled_actions]
    if s.last_handled_action is not None:
        remembered.append(s.last_handled_action)
    for h in remembered:
        if h.action != action or h.nonce != nonce:
            continue
        if nonce or h.generation == run.generation:
            return True
    return False


def on_request(run: _Run, request: ManualRequest) -> None:
    s = run.s
    if handled_before(run, request):
        return
    result = _handle(run, request)
    handled = HandledAction(
        action=request.action[:64],
        nonce=request.nonce[:256],
        time=run.now,
        result=result[:1024],
        generation=run.generation,
    )
    s.last_handled_action = handled
    s.handled_actions = [*s.handled_actions, handled][-MAX_HANDLED_ACTIONS:]


def _ignored(run: _Run, action: str, why: str) -> str:
    msg = f"{action} ignored: {why}"
    run.event("Warning", Reason.INVALID_ACTION, msg)
    return msg


def _handle(run: _Run, request: ManualRequest) -> str:
    s = run.s
    try:
        action = Action(request.action.strip().lower())
    except ValueError:
        return _ignored(
            run,
            repr(request.action[:64]),
            "unknown action (use promote, abort, retry, pause or resume)",
        )
    who = f"manual {action.value} (nonce {request.nonce or '-'})"
    live = s.phase in (Phase.PROGRESSING, Phase.PAUSED)
    if action == Action.PROMOTE:
        if not live or not s.revision:
            return _ignored(run, action.value, f"phase is {s.phase.value}")
        if rs.running(s):
            rs.end_by_hand(run, who)
            return "decision shadow ended"
        cc = s.classifier_canary
        if ccn.running(s) and cc is not None:
            ccn.advance(run, Reason.MANUAL_PROMOTE, f"{who}: classifier canary advanced by hand")
            return f"classifier canary at {fmt_weight(cc.weight)} of sessions"
        if pf.running(s):
            run.end_preflight(Reason.MANUAL_PROMOTE, f"{who}: pre-flight ended by a person")
            return f"pre-flight ended; step 1 ({fmt_weight(s.canary_weight)})"
        run.advance(Reason.MANUAL_PROMOTE, who)
        return f"advanced to step {s.step + 1} ({fmt_weight(s.canary_weight)})"
    if action == Action.ABORT:
        if not (live or s.phase == Phase.PROMOTED) or not s.revision:
            return _ignored(run, action.value, f"phase is {s.phase.value}")
        exposed = "; 0 users exposed (pre-flight)" if pf.running(s) else ""
        if rs.running(s):
            exposed = "; no user was served by the new classifier (decision shadow)"
        if ccn.running(s):
            exposed = "; the stable classifier decides for everyone again"
        run.rollback(Reason.MANUAL_ABORT, f"{who}: rolled back revision {s.revision}{exposed}")
        return "rolled back"
    if action == Action.RETRY:
        if s.phase != Phase.ROLLED_BACK or not s.revision:
            return _ignored(run, action.value, f"phase is {s.phase.value}, not RolledBack")
        run.start(s.revision, Reason.MANUAL_RETRY, who)
        return "restarted at step 1"
    if action == Action.PAUSE:
        if s.phase != Phase.PROGRESSING:
            return _ignored(run, action.value, f"phase is {s.phase.value}")
        run.pause(
            Reason.MANUAL_PAUSE, f"{who}: held at {fmt_weight(s.canary_weight)}", warning=False
        )
        return "paused"
    # resume
    if s.phase != Phase.PAUSED:
        return _ignored(run, action.value, f"phase is {s.phase.value}, not Paused")
    s.step_started_at = run.now
    cc = s.classifier_canary
    if ccn.running(s) and cc is not None:  # its own stage clock (maxStepDuration)
        cc.step_started_at = run.now
    if s.earliest_advance_at is None or s.earliest_advance_at < run.now:
        s.earliest_advance_at = run.now
    s.no_data_since = None
    if s.preflight is not None and s.preflight.state == PreFlightState.HELD:
        s.preflight.state = PreFlightState.RUNNING
    run.transition(
        Phase.PROGRESSING,
        Reason.MANUAL_RESUME,
        f"{who}: step {s.step + 1} continues at {fmt_weight(s.canary_weight)}",
    )
    return "resumed"
