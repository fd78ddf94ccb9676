"""The lab's pairwise judge: a third fake provider, in judge mode, and its policy parts.

The lab gates the simple tier's canary on ``ShadowDisagreement`` with the *pairwise* LLM
judge (``router.shadow.judge: {type: LLM, mode: Pairwise, model: judge}``): for every
shadowed canary request the router asks the judge twice, in both orders, whether the
canary's or the baseline's answer is better, and the operator's paired sequential test
(:mod:`tierguard.operator.pairedgate`) gates the net share of worse answers against the
SLO's ``allowedDrop``. The judge is a fake provider (``tierguard fake-provider``) whose
judge mode knows the truth -- a fake model's bad answer is filler
(:mod:`tierguard.lab.fakejudge`) -- made a little imperfect by :data:`JUDGE_KNOBS`.

Everything here is pure data or a pure function; the supervisor starts the process
(:meth:`tierguard.lab.supervisor.Lab.start_judge`) and anything else that needs the lab's
judge (a pre-flight stage, say) builds its policy from :func:`judge_model` and
:func:`pairwise_judge`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from tierguard.lab.fakejudge import JudgeKnobs

#: The judge's name in the lab's policy (spec.models) and in the provider-keys Secret.
JUDGE: Final = "judge"
#: The model id the judge provider is asked for (only the judge serves it).
JUDGE_UPSTREAM_MODEL: Final = "support-judge-2026"
#: USD per 1M tokens (prompt, completion): a mid-sized model used as a judge.
JUDGE_PRICE: Final = (1.0, 4.0)
JUDGE_LATENCY_MS: Final = 120.0
JUDGE_TIMEOUT: Final = "5s"
#: A realistic, slightly imperfect judge: 3 % of replies name the first answer whatever it
#: is, 2 % are random. Either turns some verdicts into ``inconsistent`` (a tie for the
#: gate), diluting a real loss a little and never inventing one.
JUDGE_KNOBS: Final = JudgeKnobs(position_bias=0.03, noise=0.02)
#: The pairwise gate's allowedDrop: the canary may answer at most 3 % of the simple tier's
#: requests worse than the baseline (net of the ones it answers better); FAIL once the net
#: share is confidently above the fail margin, half of it (1.5 %).
PAIRWISE_ALLOWED_DROP: Final = 0.03
#: Verdict columns of the report, in the order of the status' judge counts.
VERDICT_COLUMNS: Final = ("worse", "better", "ties", "inconsistent", "errors")


def judge_fake_profile(seed: int = 0, knobs: JudgeKnobs = JUDGE_KNOBS) -> dict[str, Any]:
    """The judge provider's profile (its ``--profile`` file, fake provider format)."""
    return {
        "seed": seed,
        "models": {
            "*": {
                "latency_median_s": JUDGE_LATENCY_MS / 1000.0,
                "latency_sigma": 0.3,
                "judge_position_bias": knobs.position_bias,
                "judge_length_bias": knobs.length_bias,
                "judge_noise": knobs.noise,
                "judge_unreadable_rate": knobs.unreadable_rate,
            }
        },
    }


def judge_model(url: str, secret_name: str) -> dict[str, Any]:
    """The judge's entry in ``spec.models`` (``url`` ends in ``/v1``); its API key is the
    Secret's key :data:`JUDGE`."""
    return {
        "name": JUDGE,
        "baseURL": url,
        "upstreamModel": JUDGE_UPSTREAM_MODEL,
        "apiKeySecretRef": {"name": secret_name, "key": JUDGE},
        "pricing": {
            "inputPerMillionTokens": JUDGE_PRICE[0],
            "outputPerMillionTokens": JUDGE_PRICE[1],
        },
        "timeout": JUDGE_TIMEOUT,
    }


def pairwise_judge() -> dict[str, Any]:
    """``spec.router.shadow.judge`` for the lab's judge in pairwise mode."""
    return {"type": "LLM", "mode": "Pairwise", "model": JUDGE}


def verdict_table(status: Mapping[str, Any]) -> list[str]:
    """Markdown rows of every pairwise gate's verdict counts in ``status`` (pure); empty
    when no gate has a judge."""
    rows = [
        "| tier | signal | judged | worse | better | ties | inconsistent | errors | judge |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for tier in status.get("tiers") or []:
        for sig in tier.get("signals") or []:
            j = sig.get("judge")
            if not j:
                continue
            counts = " | ".join(str(int(j.get(k) or 0)) for k in VERDICT_COLUMNS)
            health = "healthy" if j.get("healthy", True) else "**unhealthy**"
            rows.append(
                f"| {tier.get('tier')} | {sig.get('signal')} | {int(j.get('judged') or 0)} "
                f"| {counts} | {health} |"
            )
    return rows if len(rows) > 2 else []
