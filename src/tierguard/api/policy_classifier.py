"""The classifier part of the RoutingPolicy spec (``spec.classifier``): the ONNX model's
source, its tiers and how a request's text is classified. Re-exported by policy.py."""

from __future__ import annotations

from pydantic import ConfigDict, Field, model_validator

from tierguard.api.enums import Tiering
from tierguard.api.policy_base import ApiModel, Fraction, Name, cel
from tierguard.api.policy_limits import MAX_TIERS


class ConfigMapKeyRef(ApiModel):
    """A key in a ConfigMap in the policy's namespace."""

    name: Name = Field(description="ConfigMap name.")
    key: str = Field(
        default="model.onnx",
        max_length=253,
        description="Key holding the data (binaryData or data).",
    )


class TierSpec(ApiModel):
    """One tier of the classifier's output, cheapest first."""

    name: Name = Field(description="Tier name as the classifier model reports it (e.g. simple).")
    threshold: Fraction | None = Field(
        default=None,
        description=(
            "Minimum probability for a query to be put in this tier. Tiers are tried in "
            "order, cheapest first; the first whose probability reaches its threshold wins, "
            "and the last tier takes everything else (its threshold is ignored). Unset: the "
            "threshold stored in the classifier model's metadata."
        ),
    )


class ClassifierSource(ApiModel):
    """Where the ONNX classifier comes from."""

    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None,
        description=(
            "An ONNX model in a ConfigMap (binaryData; must stay under 1 MiB). Unset: the "
            "default model bundled with the router image. Rolled out by content: the "
            "revision hashes the model's bytes and the tier settings (not this name), and "
            "the routers mount an immutable copy the operator makes of it."
        ),
    )


class ClassifierSpec(ApiModel):
    """The query classifier that assigns each request a tier."""

    source: ClassifierSource = Field(
        default_factory=ClassifierSource,
        description="Model source; empty means the bundled default model.",
    )
    input: str = Field(
        default="LastUserMessage",
        pattern=r"^(LastUserMessage|AllUserMessages)$",
        description=(
            "Which part of the request is classified: the last user message, or all user "
            "messages joined. System prompts and assistant turns are never classified."
        ),
    )
    max_input_chars: int = Field(
        default=4000,
        ge=64,
        le=100000,
        description="Text beyond this many characters (from the end) is not classified.",
    )
    tiering: Tiering = Field(
        default=Tiering.SESSION,
        description=(
            "Session: a request's tier is the highest tier among its user messages (every "
            "chat request resends the conversation), so a conversation's tier only goes up "
            "and turns without new user text (tool results) keep theirs; each message is "
            "classified once and cached. Request: only this request's `input` is classified."
        ),
    )
    session_messages: int = Field(
        default=0,
        ge=0,
        le=10000,
        description=(
            "Session tiering looks at the last this many user messages; 0 means all of them."
        ),
    )
    cache_size: int = Field(
        default=10000,
        ge=0,
        le=1_000_000,
        description=(
            "Per-message classifier results kept per router (least recently used evicted), "
            "so classification cost does not grow with the conversation; 0 disables."
        ),
    )
    tiers: list[TierSpec] = Field(
        default_factory=lambda: [TierSpec(name="simple"), TierSpec(name="complex")],
        min_length=1,
        max_length=MAX_TIERS,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(t, self.exists_one(u, u.name == t.name))",
                    "tier names must be unique",
                )
            ],
        },
        description="Tiers in order, cheapest first. Must match the classifier model's tiers.",
    )
    no_text_tier: Name | None = Field(
        default=None,
        description=(
            "Tier for requests with nothing to classify: no user text at all (only images "
            "or other non-text parts, only system or assistant messages, blank text). Unset: "
            "the last, most capable tier, since nothing says the request is simple."
        ),
    )

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "!has(self.noTextTier) || self.tiers.exists(t, t.name == self.noTextTier)",
                    "noTextTier must be one of classifier.tiers",
                    ".noTextTier",
                )
            ]
        }
    )

    @model_validator(mode="after")
    def _unique_tiers(self) -> ClassifierSpec:
        names = [t.name for t in self.tiers]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"classifier.tiers: duplicate tier names {sorted(dup)}")
        check_no_text_tier(self.no_text_tier, names)
        return self


def check_no_text_tier(no_text_tier: str | None, tiers: list[str]) -> None:
    """``noTextTier`` must name a tier (the same rule as the CEL rule above)."""
    if no_text_tier is not None and no_text_tier not in tiers:
        raise ValueError(f"classifier.noTextTier: {no_text_tier!r} is not one of {tiers}")
