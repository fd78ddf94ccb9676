"""The RoutingPolicy spec: the single source of truth for the CRD schema, its CEL rules,
its defaults and the reference docs.

Field names are camelCase on the wire (Kubernetes API conventions) and snake_case in
Python. Every default lives here and is emitted into the CRD, so ``kubectl get -o yaml``
shows what the operator will do. Cross-field rules are written twice on purpose in one
place each: as CEL (``x-kubernetes-validations``) so the API server refuses a bad policy
at ``kubectl apply`` time, and as pydantic validators so the operator and the router refuse
the same input when it reaches them by another path (a file, an older API server).

This module holds the top-level spec, its cross-field CEL rules and their pydantic mirror
(:func:`cross_field_errors`); the parts live beside it and are re-exported from here, so
``from tierguard.api.policy import X`` works for every part: policy_base (base model,
name types, Secret reference), policy_limits (list limits, duration floors),
policy_classifier (``spec.classifier``), policy_models (``spec.models``, ``spec.routes``),
policy_rollout (``spec.rollout``; its pre-flight part in preflight), policy_analysis
(``spec.analysis``, ``spec.prometheus``) and policy_router (``spec.router``).
"""

from __future__ import annotations

from pydantic import ConfigDict, Field, JsonValue, model_validator

from tierguard.api.policy_analysis import (
    AnalysisSpec,
    CustomQuery,
    PrometheusSpec,
    SliceSpec,
    SLOSpec,
)
from tierguard.api.policy_base import (
    NAME_PATTERN,
    ApiModel,
    Fraction,
    Name,
    SecretKeyRef,
    cel,
)
from tierguard.api.policy_classifier import (
    ClassifierSource,
    ClassifierSpec,
    ConfigMapKeyRef,
    TierSpec,
    check_no_text_tier,
)
from tierguard.api.policy_limits import (
    DEFAULT_STEPS,
    MAX_FALLBACKS,
    MAX_MODELS,
    MAX_SLICE_GATES,
    MAX_SLICE_VALUES,
    MAX_SLICES,
    MAX_SLOS,
    MAX_STEPS,
    MAX_TIERS,
    MIN_BAKE_TIME,
    MIN_FEEDBACK_TTL,
    MIN_INTERVAL,
    MIN_LATENCY_BUDGET,
    MIN_LATENCY_OBJECTIVE,
    MIN_MAX_STEP_DURATION,
    MIN_NO_DATA_AFTER,
    MIN_REQUEST_DEADLINE,
    MIN_TIMEOUT,
    SLICE_NAME_PATTERN,
    SLICE_OTHER,
    SLICE_VALUE_PATTERN,
    SLICED_SIGNAL_NAMES,
)
from tierguard.api.policy_models import (
    ModelSpec,
    Pricing,
    RouteSpec,
)
from tierguard.api.policy_rollout import (
    NoDataSpec,
    RolloutSpec,
    StickinessSpec,
)
from tierguard.api.policy_router import (
    JudgeSpec,
    ResourceRequirements,
    RouterSpec,
    ShadowSpec,
    TracingSpec,
)
from tierguard.api.preflight import PreFlightSpec

__all__ = [
    "DEFAULT_STEPS",
    "MAX_FALLBACKS",
    "MAX_MODELS",
    "MAX_SLICES",
    "MAX_SLICE_GATES",
    "MAX_SLICE_VALUES",
    "MAX_SLOS",
    "MAX_STEPS",
    "MAX_TIERS",
    "MIN_BAKE_TIME",
    "MIN_FEEDBACK_TTL",
    "MIN_INTERVAL",
    "MIN_LATENCY_BUDGET",
    "MIN_LATENCY_OBJECTIVE",
    "MIN_MAX_STEP_DURATION",
    "MIN_NO_DATA_AFTER",
    "MIN_REQUEST_DEADLINE",
    "MIN_TIMEOUT",
    "NAME_PATTERN",
    "SLICED_SIGNAL_NAMES",
    "SLICE_NAME_PATTERN",
    "SLICE_OTHER",
    "SLICE_VALUE_PATTERN",
    "AnalysisSpec",
    "ApiModel",
    "ClassifierSource",
    "ClassifierSpec",
    "ConfigMapKeyRef",
    "CustomQuery",
    "Fraction",
    "JudgeSpec",
    "ModelSpec",
    "Name",
    "NoDataSpec",
    "PreFlightSpec",
    "Pricing",
    "PrometheusSpec",
    "ResourceRequirements",
    "RolloutSpec",
    "RouteSpec",
    "RouterSpec",
    "RoutingPolicySpec",
    "SLOSpec",
    "SecretKeyRef",
    "ShadowSpec",
    "SliceSpec",
    "StickinessSpec",
    "TierSpec",
    "TracingSpec",
    "check_no_text_tier",
    "cross_field_errors",
]

# --------------------------------------------------------------------------- the spec

_SPEC_RULES: list[JsonValue] = [
    cel(
        "self.routes.all(r, self.classifier.tiers.exists(t, t.name == r.tier))",
        "every route's tier must be one of classifier.tiers",
        ".routes",
    ),
    cel(
        "self.routes.all(r, self.models.exists(m, m.name == r.baseline))",
        "every route's baseline must name one of spec.models",
        ".routes",
    ),
    cel(
        "self.routes.all(r, !has(r.candidate) || self.models.exists(m, m.name == r.candidate))",
        "every route's candidate must name one of spec.models",
        ".routes",
    ),
    cel(
        "self.routes.all(r, r.fallbacks.all(f, self.models.exists(m, m.name == f)))",
        "every fallback must name one of spec.models",
        ".routes",
    ),
    cel(
        "self.routes.all(r, self.routes.exists_one(o, o.tier == r.tier))",
        "at most one route per tier",
        ".routes",
    ),
    cel(
        "self.classifier.tiers.all(t, self.routes.exists(r, r.tier == t.name))",
        "every classifier tier needs a route",
        ".routes",
    ),
    cel(
        "self.models.all(m, self.models.exists_one(o, o.name == m.name))",
        "model names must be unique",
        ".models",
    ),
    cel(
        "self.analysis.slos.all(s, self.classifier.tiers.exists(t, t.name == s.tier))",
        "every SLO's tier must be one of classifier.tiers",
        ".analysis.slos",
    ),
    cel(
        "self.routes.all(r, !has(r.candidate) || self.analysis.slos.exists(s, s.tier == r.tier))",
        "every tier with a candidate needs at least one SLO in analysis.slos",
        ".analysis.slos",
    ),
    cel(
        "!has(self.router.shadow.judge.model) || "
        "self.models.exists(m, m.name == self.router.shadow.judge.model)",
        "router.shadow.judge.model must name one of spec.models",
        ".router.shadow.judge.model",
    ),
    cel(
        "!has(self.router) || !has(self.router.shadow) || !has(self.router.shadow.judge) || "
        "!has(self.router.shadow.judge.model) || !has(self.router.shadow.judge.type) || "
        "self.router.shadow.judge.type != 'LLM' || self.routes.all(r, !has(r.candidate) || "
        "(r.baseline != self.router.shadow.judge.model && "
        "r.candidate != self.router.shadow.judge.model))",
        "router.shadow.judge.model must not be the baseline or the candidate of a route "
        "with a candidate (a model would judge its own answers)",
        ".router.shadow.judge.model",
    ),
    cel(
        "!has(self.rollout) || !has(self.rollout.preflight) || "
        "!has(self.rollout.preflight.enabled) || !self.rollout.preflight.enabled || "
        "(has(self.router) && has(self.router.shadow) && has(self.router.shadow.judge) && "
        "has(self.router.shadow.judge.mode) && self.router.shadow.judge.mode == 'Pairwise')",
        "rollout.preflight.enabled needs router.shadow.judge.mode Pairwise (an LLM judge "
        "that compares the two answers); set enabled: false to skip pre-flight",
        ".rollout.preflight.enabled",
    ),
    cel(
        "!has(self.rollout) || !has(self.rollout.preflight) || "
        "!has(self.rollout.preflight.tiers) || self.rollout.preflight.tiers.all(p, "
        "self.classifier.tiers.exists(t, t.name == p.tier))",
        "every rollout.preflight.tiers entry must name one of classifier.tiers",
        ".rollout.preflight.tiers",
    ),
    cel(
        "size(self.analysis.slos.filter(s, s.signal in "
        "['ErrorRate', 'ThumbsDown', 'ShadowDisagreement'])) * ("
        + "".join(
            f"{' + ' if i else ''}(size(self.analysis.slices) > {i} ? "
            f"size(self.analysis.slices[{i}].values) + 1 : 0)"
            for i in range(MAX_SLICES)
        )
        + f") <= {MAX_SLICE_GATES}",
        f"too many slice gates: ErrorRate, ThumbsDown and ShadowDisagreement SLOs times "
        f"slice values (each plus other) must be at most {MAX_SLICE_GATES}",
        ".analysis.slices",
    ),
]


class RoutingPolicySpec(ApiModel):
    """Desired routing: tiers, models, routes, and how a candidate is rolled out and judged."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    classifier: ClassifierSpec = Field(
        default_factory=ClassifierSpec,
        description="Query classifier and tiers.",
    )
    models: list[ModelSpec] = Field(
        min_length=1, max_length=MAX_MODELS, description="Upstream models."
    )
    routes: list[RouteSpec] = Field(
        min_length=1, max_length=MAX_TIERS, description="One route per tier."
    )
    rollout: RolloutSpec = Field(default_factory=RolloutSpec, description="Rollout.")
    analysis: AnalysisSpec = Field(default_factory=AnalysisSpec, description="Gates.")
    prometheus: PrometheusSpec = Field(
        default_factory=PrometheusSpec,
        description="Prometheus connection.",
    )
    router: RouterSpec = Field(
        default_factory=RouterSpec,
        description="Router deployment settings.",
    )

    @model_validator(mode="after")
    def _cross_field(self) -> RoutingPolicySpec:
        """Mirror of the CEL rules, for input that does not come through the API server."""
        errors = cross_field_errors(self)
        if errors:
            raise ValueError("; ".join(errors))
        return self

    def model(self, name: str) -> ModelSpec:
        for m in self.models:
            if m.name == name:
                return m
        raise KeyError(name)

    def route(self, tier: str) -> RouteSpec:
        for r in self.routes:
            if r.tier == tier:
                return r
        raise KeyError(tier)


def cross_field_errors(spec: RoutingPolicySpec) -> list[str]:
    """Every cross-field problem, each naming its field, in the order of the CEL rules."""
    tiers = [t.name for t in spec.classifier.tiers]
    models = [m.name for m in spec.models]
    errors: list[str] = []
    for i, r in enumerate(spec.routes):
        if r.tier not in tiers:
            errors.append(
                f"spec.routes[{i}].tier: {r.tier!r} is not one of classifier.tiers {tiers}"
            )
        for field, name in (("baseline", r.baseline), ("candidate", r.candidate)):
            if name is not None and name not in models:
                errors.append(f"spec.routes[{i}].{field}: model {name!r} is not in spec.models")
        for j, f in enumerate(r.fallbacks):
            if f not in models:
                errors.append(f"spec.routes[{i}].fallbacks[{j}]: model {f!r} is not in spec.models")
    route_tiers = [r.tier for r in spec.routes]
    for t in sorted({t for t in route_tiers if route_tiers.count(t) > 1}):
        errors.append(f"spec.routes: more than one route for tier {t!r}")
    for t in tiers:
        if t not in route_tiers:
            errors.append(f"spec.routes: tier {t!r} has no route")
    for m in sorted({m for m in models if models.count(m) > 1}):
        errors.append(f"spec.models: duplicate model name {m!r}")
    slo_tiers = {s.tier for s in spec.analysis.slos}
    for i, s in enumerate(spec.analysis.slos):
        if s.tier not in tiers:
            errors.append(
                f"spec.analysis.slos[{i}].tier: {s.tier!r} is not one of classifier.tiers {tiers}"
            )
    for i, r in enumerate(spec.routes):
        if r.candidate is not None and r.tier not in slo_tiers:
            errors.append(
                f"spec.analysis.slos: tier {r.tier!r} has a candidate (routes[{i}]) but no SLO"
            )
    n_sliced = sum(1 for s in spec.analysis.slos if s.signal.value in SLICED_SIGNAL_NAMES)
    n_values = sum(len(sl.values) + 1 for sl in spec.analysis.slices)
    if n_sliced * n_values > MAX_SLICE_GATES:
        errors.append(
            f"spec.analysis.slices: too many slice gates: {n_sliced} ErrorRate, ThumbsDown "
            f"and ShadowDisagreement SLOs x {n_values} slice values (each plus other) = "
            f"{n_sliced * n_values}, at most {MAX_SLICE_GATES}"
        )
    slice_names = [sl.name for sl in spec.analysis.slices]
    for n in sorted({n for n in slice_names if slice_names.count(n) > 1}):
        errors.append(f"spec.analysis.slices: duplicate slice name {n!r}")
    judge = spec.router.shadow.judge.model
    if judge is not None and judge not in models:
        errors.append(f"spec.router.shadow.judge.model: model {judge!r} is not in spec.models")
    if judge is not None and spec.router.shadow.judge.type == "LLM":
        for i, r in enumerate(spec.routes):
            if r.candidate is not None and judge in (r.baseline, r.candidate):
                role = "baseline" if judge == r.baseline else "candidate"
                errors.append(
                    f"spec.router.shadow.judge.model: {judge!r} is the {role} of routes[{i}] "
                    f"(tier {r.tier!r}) and would judge its own answers; pick another model"
                )
    pf = spec.rollout.preflight
    if pf.enabled and spec.router.shadow.judge.mode != "Pairwise":
        errors.append(
            "spec.rollout.preflight.enabled: pre-flight needs router.shadow.judge.mode "
            "Pairwise (an LLM judge that compares the two answers); set enabled: false "
            "to skip pre-flight"
        )
    for i, rate in enumerate(pf.tiers):
        if rate.tier not in tiers:
            errors.append(
                f"spec.rollout.preflight.tiers[{i}].tier: {rate.tier!r} is not one of "
                f"classifier.tiers {tiers}"
            )
    return errors
