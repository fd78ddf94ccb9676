"""The base of every API model (camelCase on the wire, unknown fields refused), the
name and fraction types, the CEL rule helper and the Secret reference several parts of
the spec use. Split out of policy.py so that parts of the spec can live in their own
modules (policy.py re-exports all of it)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

#: RFC 1123 label: model and tier names appear in Prometheus labels, object names and URLs.
NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, min_length=1, max_length=63)]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]


def cel(rule: str, message: str, field_path: str | None = None) -> JsonValue:
    out: dict[str, JsonValue] = {"rule": rule, "message": message}
    if field_path:
        out["fieldPath"] = field_path
    return out


class ApiModel(BaseModel):
    """Base for every API object: camelCase aliases, unknown fields refused."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        use_enum_values=False,
    )

    def to_k8s(self) -> dict[str, Any]:
        """The object as it appears in Kubernetes (aliases, no nulls)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SecretKeyRef(ApiModel):
    """A key in a Secret in the policy's namespace. Only the reference is stored; the
    value is mounted into the router and never copied into status, logs or metrics."""

    name: Name = Field(description="Secret name.")
    key: str = Field(default="api-key", max_length=253, description="Key within the Secret.")
