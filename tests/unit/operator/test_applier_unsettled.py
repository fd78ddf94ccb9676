"""An object whose apply left its create's fields untaken (the managedFields fold kept
losing to other writers: :meth:`Kube.apply` answers False) is applied again at the next
reconcile, however unchanged its render; one that was taken over is not."""

from __future__ import annotations

from typing import Any, cast

from rolloutsim import make_spec

from tierguard.api.enums import Phase
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator import classifiercontent as cc
from tierguard.operator import judgepromptcontent as jpc
from tierguard.operator.applier import Applier
from tierguard.operator.kube import Kube
from tierguard.operator.rendermeta import RenderedMetadata

BODY = {"metadata": {"name": "shop", "namespace": "team-a", "uid": "uid-1"}}


class _FoldingKube:
    """The calls :meth:`Applier.apply_rendered` makes; ``apply`` answers from ``settles``
    (one answer per call) and records the kinds it was asked for."""

    def __init__(self, settles: list[bool]) -> None:
        self.settles = settles
        self.created: list[str] = []
        self.applied: list[str] = []

    def ensure_secret(self, obj: dict[str, Any], key: str) -> bool:
        return True

    def service_monitor_available(self) -> bool:
        return False

    def create(self, obj: dict[str, Any]) -> bool:
        self.created.append(obj["kind"])
        return True

    def apply(self, obj: dict[str, Any]) -> bool:
        self.applied.append(obj["kind"])
        return self.settles.pop(0)

    def read_secret_key(self, namespace: str, name: str, key: str) -> str:
        return "value"


def test_an_apply_that_could_not_take_over_is_repeated_at_the_next_reconcile() -> None:
    kube = _FoldingKube(settles=[False, True])
    applier = Applier(cast(Kube, kube), RenderedMetadata())
    spec = make_spec()

    def reconcile(status: RoutingPolicyStatus) -> None:
        error, retry = applier.apply_rendered(
            BODY, spec, status, cc.ClassifierLookup(), jpc.JudgePromptLookup()
        )
        assert (error, retry) == (None, float("inf")), "not an error: nothing backs off"

    reconcile(RoutingPolicyStatus())
    assert "ConfigMap" in kube.created and kube.applied == [], "a new policy: POSTs only"
    moved = RoutingPolicyStatus(phase=Phase.PROGRESSING, revision="r", canary_weight=5)
    reconcile(moved)  # a new weight changes the ConfigMap only; its fold kept losing
    assert kube.applied == ["ConfigMap"]
    reconcile(moved)  # the same render: applied again, and this time taken over
    assert kube.applied == ["ConfigMap", "ConfigMap"]
    reconcile(moved)  # nothing left to do
    assert kube.applied == ["ConfigMap", "ConfigMap"]
