"""``kubectl tierguard``: read a RoutingPolicy's rollout and steer it.

Installed as the console script ``kubectl-tierguard``, so kubectl finds it as a plugin::

    kubectl tierguard status support-assistant -n shop
    kubectl tierguard promote|abort|retry|pause|resume support-assistant
    kubectl tierguard history support-assistant
    kubectl tierguard watch support-assistant

Steering only sets the two annotations ``tierguard.io/action`` and
``tierguard.io/action-nonce`` (a fresh nonce each time), exactly what a GitOps commit
would do; the operator acts once per nonce and reports the result in
``status.lastHandledAction``. The plugin never writes status or spec.

The formatting functions are pure (tested without a cluster); only :func:`main` talks to
the API server.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from tierguard.api import constants as c
from tierguard.api import stickiness as stk
from tierguard.api.enums import Action
from tierguard.api.status import RoutingPolicyStatus
from tierguard.operator.kubectl_classifier import classifier_change_lines


def _rate(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def _bound(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:+.1f}pp"


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    )


def _ago(t: datetime | None, now: datetime) -> str:
    if t is None:
        return "-"
    s = int((now - t).total_seconds())
    if s < 0:
        return f"in {-s}s"
    return f"{s}s ago" if s < 120 else f"{s // 60}m ago" if s < 7200 else f"{s // 3600}h ago"


def format_status(name: str, body: dict[str, Any], now: datetime | None = None) -> str:
    """The per-tier table: samples, rates, bound and verdict per signal, grouped by tier,
    then slice (the tier's own gates first, ``-`` in the SLICE column)."""
    now = now or datetime.now(UTC)
    st = RoutingPolicyStatus.model_validate(body.get("status") or {})
    lines = [
        f"RoutingPolicy {body['metadata'].get('namespace', '')}/{name}",
        f"  phase:     {st.phase.value}   step {st.step_display or '-'}   "
        f"canary weight {st.canary_weight:g}%   revision {st.revision or '-'}"
        + (f"   classifier {st.classifier_digest}" if st.classifier_digest else "")
        + (f"   judge prompt {st.judge_prompt_digest}" if st.judge_prompt_digest else ""),
        f"  step started {_ago(st.step_started_at, now)}; may advance "
        f"{_ago(st.earliest_advance_at, now)}; "
        f"evidence last changed {_ago(st.last_evaluated_at, now)}",
        f"  message:   {st.message}",
    ]
    if st.stickiness is not None:
        lines.append(
            f"  session key {stk.describe(st.stickiness)} (since {_ago(st.stickiness.since, now)})"
        )
    if st.no_data_since is not None:
        lines.append(f"  no data since {_ago(st.no_data_since, now)}")
    for cond in st.conditions:
        lines.append(f"  {cond.type.value:<11} {cond.status:<7} {cond.reason}")
    if st.last_handled_action is not None:
        a = st.last_handled_action
        lines.append(f"  last action: {a.action} (nonce {a.nonce or '-'}): {a.result}")
    rows = [
        [
            "TIER",
            "SLICE",
            "SIGNAL",
            "VERDICT",
            "CONTROL n",
            "CONTROL",
            "CANARY n",
            "CANARY",
            "BOUND",
            "ALLOWED",
            "E-VALUE",
        ]
    ]
    for tier in st.tiers:
        # stable: within a slice the gates keep the operator's (signal) order
        for s in sorted(tier.signals, key=lambda x: (x.slice is not None, x.slice or "")):
            rows.append(
                [
                    tier.tier,
                    s.slice or "-",
                    s.signal,
                    s.verdict.value,
                    str(s.control.samples),
                    _rate(s.control.rate),
                    str(s.canary.samples),
                    _rate(s.canary.rate),
                    _bound(s.difference_upper_bound),
                    "-" if s.allowed is None else f"{s.allowed * 100:.1f}pp",
                    "-" if s.e_value is None else f"{s.e_value:.3g}/{s.e_value_threshold or 0:.3g}",
                ]
            )
    lines.append("")
    lines.append(_table(rows) if len(rows) > 1 else "no gate has been evaluated yet")
    judges = [(t.tier, s) for t in st.tiers for s in t.signals if s.judge is not None]
    if judges:
        jrows = [
            ["TIER", "SIGNAL", "JUDGED", "WORSE", "BETTER", "TIES", "FLIPPED", "ERRORS", "JUDGE"]
        ]
        for tier_name, s in judges:
            j = s.judge
            assert j is not None
            health = "healthy" if j.healthy else "UNHEALTHY"
            jrows.append(
                [
                    tier_name,
                    s.signal,
                    str(j.judged),
                    str(j.worse),
                    str(j.better),
                    str(j.ties),
                    f"{j.inconsistent} ({_rate(j.order_inconsistency_rate)})",
                    f"{j.errors} ({_rate(j.error_rate)})",
                    health,
                ]
            )
        lines += ["", "pairwise judge (canary's answer vs the baseline's, both orders):"]
        lines.append(_table(jrows))
    lines += _preflight_lines(st)
    lines += classifier_change_lines(st, _table)
    return "\n".join(lines)


def _preflight_lines(st: RoutingPolicyStatus) -> list[str]:
    """The revision's pre-flight: state, spend against the cap, per-tier win/tie/loss
    and judge health (the candidate's mirrored answers vs the baseline's)."""
    pf = st.preflight
    if pf is None:
        return []
    lines = [
        "",
        f"pre-flight: {pf.state.value}   spent ${pf.spend_usd:.2f} of ${pf.max_spend_usd:.2f}"
        f"   {pf.message}",
    ]
    if not pf.tiers:
        return lines
    rows = [
        [
            "TIER",
            "RATE",
            "VERDICT",
            "JUDGED",
            "BETTER",
            "TIES",
            "WORSE",
            "FLIPPED",
            "ERRORS",
            "JUDGE",
        ]
    ]
    for t in pf.tiers:
        j = t.judge
        rows.append(
            [
                t.tier,
                f"{t.sample_rate:.0%}",
                t.verdict.value,
                str(j.judged),
                str(j.better),
                str(j.ties),
                str(j.worse),
                f"{j.inconsistent} ({_rate(j.order_inconsistency_rate)})",
                f"{j.errors} ({_rate(j.error_rate)})",
                "healthy" if j.healthy else "UNHEALTHY",
            ]
        )
    lines.append(_table(rows))
    return lines


def format_history(body: dict[str, Any]) -> str:
    st = RoutingPolicyStatus.model_validate(body.get("status") or {})
    rows = [["TIME", "PHASE", "STEP", "WEIGHT", "REASON", "MESSAGE"]]
    for h in st.history:
        rows.append(
            [
                h.time.strftime("%Y-%m-%dT%H:%M:%SZ"),
                h.phase.value,
                str(h.step + 1),
                f"{h.weight:g}%",
                h.reason,
                h.message,
            ]
        )
    return _table(rows) if len(rows) > 1 else "no transitions yet"


def action_patch(action: Action, nonce: str | None = None) -> dict[str, Any]:
    """The merge patch a steering command sends (annotations only)."""
    return {
        "metadata": {
            "annotations": {
                c.ANNOTATION_ACTION: action.value,
                c.ANNOTATION_ACTION_NONCE: nonce or f"{int(time.time())}-{uuid.uuid4().hex[:8]}",
            }
        }
    }


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kubectl tierguard", description=__doc__.splitlines()[0])
    p.add_argument("--kubeconfig", default=None)
    p.add_argument("--context", default=None)
    p.add_argument("-n", "--namespace", default=None)
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in (
        ("status", "per-tier table: samples, rates, bound, verdict"),
        ("history", "transitions, oldest first"),
        ("watch", "reprint status when it changes (Ctrl-C to stop)"),
        *((a.value, f"ask the operator to {a.value}") for a in Action),
    ):
        sp = sub.add_parser(name, help=text)
        sp.add_argument("name", help="RoutingPolicy name")
        if name == "watch":
            sp.add_argument("--interval", type=float, default=2.0)
        if name in {a.value for a in Action}:
            sp.add_argument("--nonce", default=None, help="nonce (default: a fresh one)")
            sp.add_argument(
                "--wait",
                type=float,
                default=0.0,
                help="wait up to this many seconds for the operator's answer",
            )
    return p


def _namespace(args: argparse.Namespace) -> str:
    if args.namespace:
        return str(args.namespace)
    from kubernetes import config

    try:
        contexts, ctx = config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=args.kubeconfig
        )
        if args.context:
            ctx = next(x for x in contexts if x["name"] == args.context)
        return str(ctx.get("context", {}).get("namespace") or "default")
    except Exception:  # no kubeconfig (in-cluster): the default namespace
        return "default"


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    from tierguard.operator.kube import load_api_client

    api = client.CustomObjectsApi(load_api_client(args.kubeconfig, args.context))
    ns = _namespace(args)

    def get() -> dict[str, Any]:
        out = api.get_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, args.name)
        return cast(dict[str, Any], out)

    try:
        if args.command == "status":
            print(format_status(args.name, get()))
        elif args.command == "history":
            print(format_history(get()))
        elif args.command == "watch":
            last = ""
            while True:
                text = format_status(args.name, get())
                if text != last:
                    print(f"--- {datetime.now(UTC):%H:%M:%S}\n{text}", flush=True)
                    last = text
                time.sleep(args.interval)
        else:
            patch = action_patch(Action(args.command), args.nonce)
            nonce = patch["metadata"]["annotations"][c.ANNOTATION_ACTION_NONCE]
            api.patch_namespaced_custom_object(c.GROUP, c.VERSION, ns, c.PLURAL, args.name, patch)
            print(f"{args.command} requested for {ns}/{args.name} (nonce {nonce})")
            deadline = time.monotonic() + args.wait
            while time.monotonic() < deadline:
                st = RoutingPolicyStatus.model_validate(get().get("status") or {})
                done = st.last_handled_action
                if done is not None and done.nonce == nonce:
                    print(f"operator: {done.result}")
                    return 0
                time.sleep(0.5)
            if args.wait:
                print("the operator has not handled it yet", file=sys.stderr)
                return 1
    except ApiException as exc:
        print(f"error: {exc.status} {exc.reason}: {(exc.body or '')[:300]}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
