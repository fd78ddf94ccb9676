"""The whole RoutingPolicy object, for manifests read from files and the API server."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from tierguard.api.constants import KIND
from tierguard.api.policy import ApiModel, RoutingPolicySpec
from tierguard.api.status import RoutingPolicyStatus


class ObjectMeta(ApiModel):
    """The part of metadata tierguard reads; everything else is kept as is."""

    model_config = ApiModel.model_config | {"extra": "allow"}

    name: str = Field(min_length=1, max_length=253)
    namespace: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class RoutingPolicy(ApiModel):
    """A RoutingPolicy as stored by the API server."""

    model_config = ApiModel.model_config | {"extra": "ignore"}

    api_version: Literal["tierguard.io/v1alpha1"] = Field(
        default="tierguard.io/v1alpha1", alias="apiVersion"
    )
    kind: Literal["RoutingPolicy"] = KIND
    metadata: ObjectMeta
    spec: RoutingPolicySpec
    status: RoutingPolicyStatus | None = None

    @classmethod
    def from_k8s(cls, body: dict[str, Any]) -> RoutingPolicy:
        return cls.model_validate(body)
