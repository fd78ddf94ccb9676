"""The decision shadow of a classifier change, end to end on real parts (issue 17 item 5):
the operator (a subprocess with its least-privilege identity) against a real API server,
a real router process fed by the rendered ConfigMap, and a real Prometheus scraping it.

A threshold edit that puts every query in the cheap tier is a classifier change: the
rollout restarts at 0 % with both classifiers loaded and the stable one deciding; the
router counts the tier transitions; status shows the moved share (half the traffic is
complex, all of it would move down) and the projected cost change; after minRequests the
shadow ends with an Event that says what it found, and the classifier canary begins: the
new classifier decides for 10 % of sessions and the per-cell counters reach status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from test_operator import Cluster

from operatorkit import OperatorProcess, Routed
from tierguard.api.enums import Phase, Reason
from tierguard.api.status import RoutingPolicyStatus

if TYPE_CHECKING:
    from kubernetes.client import ApiClient


pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

POLICY = "desk"


def test_a_threshold_edit_is_shadowed_and_status_shows_what_would_move(
    operator: OperatorProcess,
    kube_api: ApiClient,
    namespace: str,
    routed: Routed,
    wait_for: Any,
) -> None:
    cluster = Cluster(kube_api, namespace, POLICY)
    status = cluster.status
    with routed(POLICY) as rs:
        doc = rs.manifest(
            no_data_after="10m",
            pricing={
                "big": {"inputPerMillionTokens": 10, "outputPerMillionTokens": 30},
                "small": {"inputPerMillionTokens": 1, "outputPerMillionTokens": 3},
            },
        )
        # simple: big -> small (the cheap route), complex: big only
        doc["spec"]["routes"][1] = {"tier": "complex", "baseline": "big"}
        doc["spec"]["analysis"]["slos"] = doc["spec"]["analysis"]["slos"][:1]
        doc["spec"]["rollout"]["classifierShadow"] = {
            "minRequests": 30,
            "minDuration": "1s",
            "maxDuration": "3m",
        }
        traffic = rs.serve(doc).traffic
        first = wait_for(
            lambda: (s := status()).phase == Phase.PROGRESSING and s,
            timeout=60,
            message=f"first revision; operator log:\n{operator.log()}",
        )
        assert first.classifier_shadow is None  # the first classifier decides at once

        # Threshold 0: the candidate puts every query in "simple".
        cluster.patch_spec(
            {"classifier": {"tiers": [{"name": "simple", "threshold": 0.0}, {"name": "complex"}]}}
        )
        shadow = wait_for(
            lambda: (s := status()).revision != first.revision and s,
            timeout=30,
            message=f"a new revision; operator log:\n{operator.log()}",
        )
        assert shadow.classifier_shadow is not None and shadow.classifier_shadow.running
        # the model split stays what it was (step 1 at 10 %)
        assert (shadow.canary_weight, shadow.step_display) == (10.0, "Shadow/3")

        def counted() -> RoutingPolicyStatus | None:
            s = status()
            sh = s.classifier_shadow
            return s if sh is not None and sh.requests >= 10 else None

        seen = wait_for(counted, timeout=90, message=f"counts; log:\n{operator.log()}")
        sh = seen.classifier_shadow
        assert sh is not None
        cells = {(x.from_tier, x.to_tier): x.requests for x in sh.cells}
        # Traffic alternates simple and complex questions; the candidate says simple.
        assert set(cells) <= {("simple", "simple"), ("complex", "simple")}, cells
        assert cells.get(("complex", "simple"), 0) > 0
        assert sh.moved_share is not None and 0.3 <= sh.moved_share <= 0.7
        assert sh.down_share == sh.moved_share and sh.up_share == 0.0
        # complex (big, 40 $/M) moving to simple (small, 4 $/M): the bill goes down
        assert sh.projected_cost_change is not None and sh.projected_cost_change < -0.2

        done = wait_for(
            lambda: (
                (s := status()).classifier_shadow is not None
                and not s.classifier_shadow.running
                and s
            ),
            timeout=120,
            message=f"the shadow never ended; operator log:\n{operator.log()}",
        )
        # then the classifier canary: the new classifier decides for 10 % of sessions,
        # the stable one still for the rest (the model split stays as it was)
        assert done.phase == Phase.PROGRESSING and done.canary_weight == 10.0
        assert done.classifier_canary is not None and done.classifier_canary.running
        assert done.classifier_canary.weight == 10.0
        assert done.stable_classifier is not None
        assert done.stable_classifier.settings["tiers"][0]["threshold"] == 0.5

        def cells_counted() -> RoutingPolicyStatus | None:
            s = status()
            cc = s.classifier_canary
            down = [x for x in (cc.cells if cc else []) if x.direction == "Down"]
            ok = down and down[0].candidate_requests > 0 and down[0].stable_requests > 0
            return s if ok else None

        judged = wait_for(cells_counted, timeout=90, message=f"cells; log:\n{operator.log()}")
        assert judged.classifier_canary is not None
        down = next(x for x in judged.classifier_canary.cells if x.direction == "Down")
        assert (down.from_tier, down.to_tier) == ("complex", "simple")
        # the candidate's sessions were served on the simple tier, the stable's on complex
        assert down.stable_requests > down.candidate_requests > 0
        found = cluster.events(Reason.CLASSIFIER_SHADOW_FINISHED.value)
        assert found and "would move to another tier" in (found[0].message or "")
        assert traffic.errors == 0
