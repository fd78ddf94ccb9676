"""The rollout machine's inputs and outputs (re-exported by
:mod:`tierguard.operator.rollout`) and the formatting its messages share: kept apart so
the stage modules (:mod:`~tierguard.operator.rollout_preflight`,
:mod:`~tierguard.operator.rollout_classifier`) use them without importing the machine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from tierguard.api.enums import Arm, Reason, Verdict
from tierguard.api.status import RoutingPolicyStatus


@dataclass(frozen=True)
class ManualRequest:
    """The ``tierguard.io/action`` and ``tierguard.io/action-nonce`` annotations."""

    action: str
    nonce: str = ""


@dataclass(frozen=True)
class SetWeight:
    """The routers must now send ``weight`` % of each tier under canary to its candidate;
    the rest is labelled ``control_arm``. Carried out by re-rendering the ConfigMap."""

    weight: float
    control_arm: Arm


@dataclass(frozen=True)
class EmitEvent:
    """A Kubernetes Event on the policy."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


@dataclass(frozen=True)
class GateEvaluated:
    """One gate was judged (for the operator's gate-evaluation counter)."""

    tier: str
    signal: str
    verdict: Verdict
    upper_bound: float | None = None  # on canary minus control bad rate, when computed
    allowed: float = 0.0


@dataclass(frozen=True)
class RolledBack:
    """A rollback happened (for the operator's rollback counter)."""

    reason: str


RolloutAction = SetWeight | EmitEvent | GateEvaluated | RolledBack

#: Every reason a rollback can have. The operator creates its rollback counter at 0 for
#: each of them as soon as it sees a policy, so the first rollback is an increase from 0
#: that ``increase()`` sees (a counter born at 1 is invisible to it).
ROLLBACK_REASONS: tuple[Reason, ...] = (
    Reason.GATE_FAILED,
    Reason.MANUAL_ABORT,
    Reason.NO_DATA,
    Reason.PROMETHEUS_UNREACHABLE,
    Reason.PREFLIGHT_FAILED,
)


@dataclass
class Decision:
    """What :func:`reconcile` decided."""

    status: RoutingPolicyStatus
    actions: list[RolloutAction] = field(default_factory=list)

    @property
    def events(self) -> list[EmitEvent]:
        return [a for a in self.actions if isinstance(a, EmitEvent)]


def fmt_weight(w: float) -> str:
    return f"{w:g}%"


def fmt_time(t: datetime) -> str:
    """RFC 3339 in UTC, to the second (as kubectl shows times)."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
