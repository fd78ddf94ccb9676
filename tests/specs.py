"""Small RoutingPolicy specs the unit tests share (one place to change when the API does)."""

from __future__ import annotations

from tierguard.api.policy import RoutingPolicySpec


def one_model_spec() -> RoutingPolicySpec:
    """Two tiers on one model, no SLOs: the least a valid policy needs, for tests of the
    rendering and the router's set-up that do not care about routing or gates."""
    return RoutingPolicySpec.model_validate(
        {
            "models": [{"name": "big", "baseURL": "http://big/v1", "upstreamModel": "b"}],
            "classifier": {"tiers": [{"name": "simple", "threshold": 0.5}, {"name": "complex"}]},
            "routes": [
                {"tier": "simple", "baseline": "big"},
                {"tier": "complex", "baseline": "big"},
            ],
            "analysis": {"slos": []},
        }
    )
