"""Reading a ``POST /v1/feedback`` body (the response id and the rating; pure), and
counting a verified rating.

``{"id": "<response id>", "rating": "up" | "down"}``; ``thumbs_up`` / ``thumbs_down`` and
``1`` / ``-1`` are accepted as spellings of the same two ratings. The id itself is
verified by :mod:`tierguard.router.decision_id`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tierguard.api import metrics as mdefs
from tierguard.api.policy import SliceSpec
from tierguard.router.decision_id import Decision
from tierguard.router.errors import InvalidRequestError
from tierguard.router.metrics import RouterMetrics
from tierguard.router.slicing import known_labels

RATINGS = {
    "up": mdefs.RATING_UP,
    "down": mdefs.RATING_DOWN,
    "thumbs_up": mdefs.RATING_UP,
    "thumbs_down": mdefs.RATING_DOWN,
    "1": mdefs.RATING_UP,
    "-1": mdefs.RATING_DOWN,
}


def parse_feedback(body: Any) -> tuple[str, str]:
    """(response id, rating) of a feedback body; raises :class:`InvalidRequestError`
    naming the offending field."""
    if not isinstance(body, dict):
        raise InvalidRequestError(
            "The body must be a JSON object.", param="body", code="invalid_type"
        )
    did, rating_raw = body.get("id"), body.get("rating")
    if not isinstance(did, str) or not did:
        raise InvalidRequestError(
            "Missing required parameter: 'id' (the response id).",
            param="id",
            code="missing_required_parameter",
        )
    rating = RATINGS.get(str(rating_raw).lower()) if isinstance(rating_raw, str | int) else None
    if rating is None or isinstance(rating_raw, bool):
        raise InvalidRequestError(
            "'rating' must be 'up' or 'down'.", param="rating", code="invalid_value"
        )
    return did, rating


def count_feedback(
    metrics: RouterMetrics, slices: Sequence[SliceSpec], decision: Decision, rating: str
) -> None:
    """``feedback_total`` for the rated answer's route, ``slice_feedback_total`` once
    per slice it carries that the policy still declares, and during a classifier canary
    ``classifier_cell_feedback_total`` for its cell and decider."""
    cluster = decision.cluster or mdefs.CLUSTER_NONE
    d = decision
    metrics.feedback.labels(d.policy, d.tier, d.arm, d.model, rating, cluster).inc()
    for name, value in known_labels(slices, d.slices):
        metrics.slice_feedback.labels(d.policy, d.tier, d.arm, name, value, rating, cluster).inc()
    if len(d.cell) == 3 and d.cell[2] in mdefs.DECIDERS:  # signed by us: our own tier names
        metrics.classifier_cell_feedback.labels(d.policy, *d.cell, rating).inc()
