"""A policy's gates: one per SLO of a tier that has a candidate (plus the slice gates of
:mod:`~tierguard.operator.slicegates`), each with the fingerprint that ties its state in
``status.gateState`` to the SLO it was started for."""

from __future__ import annotations

import hashlib
import json

from tierguard.api.durations import parse_duration
from tierguard.api.enums import Signal
from tierguard.api.policy import RoutingPolicySpec, SLOSpec
from tierguard.operator import statistics as st
from tierguard.operator.gatetypes import GateSpec
from tierguard.operator.slicegates import slice_gate_specs


def _fingerprint(slo: SLOSpec) -> str:
    doc = json.dumps(slo.to_k8s(), sort_keys=True)
    return hashlib.sha256(doc.encode()).hexdigest()[:12]


def canary_tiers(spec: RoutingPolicySpec) -> list[str]:
    """Tiers with a candidate, in classifier order."""
    with_candidate = {r.tier for r in spec.routes if r.candidate is not None}
    return [t.name for t in spec.classifier.tiers if t.name in with_candidate]


def gate_specs(spec: RoutingPolicySpec) -> list[GateSpec]:
    """The gates of a policy: every SLO of a tier under canary.

    Keys are ``tier/Signal``; a second SLO with the same tier and signal (say a relative
    and an absolute objective) gets its fingerprint appended so both are kept apart.
    """
    tiers = set(canary_tiers(spec))
    judge = spec.router.shadow.judge
    pairwise_judge = judge.type == "LLM" and judge.mode == "Pairwise"
    out: list[GateSpec] = []
    seen: set[str] = set()
    for slo in spec.analysis.slos:
        if slo.tier not in tiers:
            continue
        fp = _fingerprint(slo)
        key = f"{slo.tier}/{slo.signal.value}"
        if key in seen:
            key = f"{key}/{fp[:6]}"
        seen.add(key)
        absolute = slo.objective == "Absolute"
        allowed = float(
            slo.threshold if absolute and slo.threshold is not None else slo.allowed_drop
        )
        if slo.signal == Signal.SHADOW_DISAGREEMENT and pairwise_judge:
            # The paired test: non-inferiority on the net share of worse answers, held to
            # allowedDrop (or an Absolute objective's threshold), FAIL beyond failMargin.
            out.append(
                GateSpec(
                    key=key,
                    tier=slo.tier,
                    signal=slo.signal,
                    absolute=False,
                    allowed=allowed,
                    fail_margin=(
                        slo.fail_margin
                        if slo.fail_margin is not None and not absolute
                        else st.default_fail_margin(allowed)
                    ),
                    fingerprint=f"{fp[:9]}pw{judge.model or ''}"[:24],
                    pairwise=True,
                    max_inconsistency=judge.max_order_inconsistency,
                    max_error_rate=judge.max_error_rate,
                )
            )
            continue
        if slo.signal == Signal.SHADOW_DISAGREEMENT and not absolute:
            # The router shadows canary answers only: the disagreement rate is already a
            # canary-vs-baseline measure and has no control arm of its own, so "relative to
            # control" means the share of disagreements must stay within the allowed drop.
            absolute = True
        out.append(
            GateSpec(
                key=key,
                tier=slo.tier,
                signal=slo.signal,
                absolute=absolute,
                allowed=allowed,
                fail_margin=None if absolute else slo.fail_margin,
                latency_objective=(
                    parse_duration(slo.latency_objective) if slo.latency_objective else None
                ),
                query=slo.query,
                fingerprint=fp,
            )
        )
    return out + slice_gate_specs(spec, out)
