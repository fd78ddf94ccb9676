"""The live view: one compact screen redrawn in place while a scenario runs.

A progress display, not a log flood: stage, weight, per-tier samples and verdicts (read
from the RoutingPolicy's status, i.e. exactly what ``kubectl get -o yaml`` shows), cost
so far and a few traffic figures. :func:`render` is pure (snapshot in, lines out) and
unit-tested; :class:`LiveView` only decides how to put the lines on the terminal: redrawn
in place with ANSI cursor movement on a TTY, and on anything else (CI logs, a pipe) one
plain line whenever the stage, phase or a verdict changes, plus a heartbeat every 30 s.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

LOCAL_ROUTERS_NOTE = "routers: local processes running the operator's Deployment (no kubelet here)"


@dataclass(frozen=True)
class CostFigures:
    """Cost so far: what was spent and what the same requests cost on the capable model."""

    spent_usd: float = 0.0
    all_capable_usd: float = 0.0

    @property
    def saving(self) -> float | None:
        if self.all_capable_usd <= 0:
            return None
        return 1.0 - self.spent_usd / self.all_capable_usd


@dataclass(frozen=True)
class Snapshot:
    """Everything one frame shows."""

    scenario: str
    elapsed_s: float
    policy: str
    status: Mapping[str, Any]
    steps: Sequence[float]
    requests: int = 0
    rate: float = 0.0
    failed: int = 0
    rated: int = 0
    p95_s: float | None = None
    cost: CostFigures = field(default_factory=CostFigures)
    routers: int = 0
    events: Sequence[str] = ()
    note: str = ""


def _fmt_rate(bad: int, n: int) -> str:
    return f"{bad}/{n}" + (f" ({bad / n:.1%})" if n else "")


def _steps_bar(
    steps: Sequence[float], step: int, weight: float, phase: str, preflight: str = ""
) -> str:
    """``preflight``: the pre-flight stage's state (status.preflight.state; "" without)."""
    parts = []
    active = phase in ("Progressing", "Paused")
    in_preflight = preflight in ("Running", "Held") and active
    if preflight and preflight != "Skipped":
        flying = f"[pre-flight 0%{'' if preflight == 'Running' else ', ' + preflight}]"
        parts.append(flying if in_preflight else f"pre-flight {preflight}")
    for i, s in enumerate(steps):
        label = f"{s:g}%"
        if in_preflight:
            pass  # no weighted step is current yet
        elif active and i == step:
            label = f"[{label}]"
        elif phase == "Promoted" or (active and i < step):
            label = f"{label}✓"
        parts.append(label)
    return " → ".join(parts) + f"   weight now {weight:g}%"


def _preflight_state(st: Any) -> str:
    return str((st.get("preflight") or {}).get("state") or "")


def _preflight_lines(st: Any) -> list[str]:
    """Per tier, the pre-flight judge's win/tie/loss and the spend (while it runs or
    once it ended; nothing when it was skipped or never ran)."""
    pf = st.get("preflight") or {}
    if not pf or pf.get("state") == "Skipped":
        return []
    out = [
        f"  pre-flight {pf.get('state')}: spent ${float(pf.get('spendUSD') or 0):.4f} "
        f"of ${float(pf.get('maxSpendUSD') or 0):.2f}"
    ]
    for t in pf.get("tiers") or []:
        j = t.get("judge") or {}
        out.append(
            f"    {t.get('verdict')!s:<12} tier {t.get('tier')}: {int(j.get('judged') or 0)} "
            f"judged, loss {int(j.get('worse') or 0)} / win {int(j.get('better') or 0)} / "
            f"tie {int(j.get('ties') or 0)}"
            + ("" if j.get("healthy", True) else "  judge UNHEALTHY")
        )
    return out


def render(snap: Snapshot, width: int = 100) -> list[str]:
    """The frame as lines (pure)."""
    st = snap.status
    phase = str(st.get("phase") or "Pending")
    step = int(st.get("step") or 0)
    weight = float(st.get("canaryWeight") or 0.0)
    mins, secs = divmod(int(snap.elapsed_s), 60)
    lines = [
        f"tierguard lab · scenario {snap.scenario} · {mins:02d}:{secs:02d}",
        f"policy {snap.policy}: {phase}  step {st.get('stepDisplay') or '-'}",
        "  " + _steps_bar(snap.steps, step, weight, phase, _preflight_state(st)),
    ]
    lines += _preflight_lines(st)
    tiers = st.get("tiers") or []
    if not tiers:
        lines.append("  (no gate evaluated yet)")
    for tier in tiers:
        lines.append(f"  tier {tier.get('tier')}: {tier.get('verdict')}")
        for sig in tier.get("signals") or []:
            c = sig.get("control") or {}
            k = sig.get("canary") or {}
            ub = sig.get("differenceUpperBound")
            allowed = sig.get("allowed")
            bound = (
                f" ub {ub:+.3f}/{allowed:.3f}"
                if isinstance(ub, int | float) and isinstance(allowed, int | float)
                else ""
            )
            control = _fmt_rate(c.get("bad", 0), c.get("samples", 0))
            canary = _fmt_rate(k.get("bad", 0), k.get("samples", 0))
            lines.append(
                f"    {sig.get('verdict')!s:<12} {sig.get('signal', '?'):<18} "
                f"canary {canary:<14} control {control:<16}{bound}"
            )
    p95 = f"{snap.p95_s * 1000:.0f} ms" if snap.p95_s is not None else "-"
    lines.append(
        f"traffic: {snap.requests} requests ({snap.rate:.0f}/s), {snap.failed} failed, "
        f"{snap.rated} rated, p95 {p95}"
    )
    saving = snap.cost.saving
    lines.append(
        f"cost so far: ${snap.cost.spent_usd:.4f} vs ${snap.cost.all_capable_usd:.4f} all-capable"
        + (f" ({saving:+.1%} saved)" if saving is not None else "")
    )
    if snap.events:
        lines.append("events: " + "; ".join(snap.events[-3:]))
    message = str(st.get("message") or "")
    if message:
        lines.append(f"operator: {message}")
    lines.append(f"{LOCAL_ROUTERS_NOTE} [{snap.routers} running]")
    if snap.note:
        lines.append(snap.note)
    return [line if len(line) <= width else line[: width - 1] + "…" for line in lines]


def change_key(snap: Snapshot) -> tuple[Any, ...]:
    """What must change for the plain-text view to print a new line."""
    st = snap.status
    verdicts = tuple(
        (t.get("tier"), t.get("verdict"), tuple(s.get("verdict") for s in t.get("signals") or []))
        for t in st.get("tiers") or []
    )
    pf = st.get("preflight") or {}
    preflight = (pf.get("state"), tuple(t.get("verdict") for t in pf.get("tiers") or []))
    return (
        st.get("phase"),
        st.get("step"),
        st.get("canaryWeight"),
        verdicts,
        preflight,
        len(snap.events),
    )


def plain_line(snap: Snapshot) -> str:
    """One line for logs: time, phase, weight, tier verdicts, cost."""
    st = snap.status
    tiers = ", ".join(f"{t.get('tier')}={t.get('verdict')}" for t in st.get("tiers") or [])
    return (
        f"[{snap.elapsed_s:6.1f}s] {st.get('phase') or 'Pending'} step "
        f"{st.get('stepDisplay') or '-'} weight {float(st.get('canaryWeight') or 0):g}% "
        f"{tiers or 'no verdicts yet'} · {snap.requests} req · ${snap.cost.spent_usd:.4f}"
        + (f" · {snap.events[-1]}" if snap.events else "")
    )


class LiveView:
    """Draws snapshots on ``out``: in place on a TTY, change-driven lines otherwise."""

    HEARTBEAT_S = 30.0

    def __init__(self, out: TextIO | None = None, *, tty: bool | None = None) -> None:
        self.out = out if out is not None else sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self._drawn = 0
        self._last_key: tuple[Any, ...] | None = None
        self._last_print = 0.0

    def show(self, snap: Snapshot) -> None:
        if self.tty:
            width = shutil.get_terminal_size((100, 24)).columns
            lines = render(snap, width)
            if self._drawn:
                self.out.write(f"\x1b[{self._drawn}F")  # to the start of the first line
            for line in lines:
                self.out.write("\x1b[2K" + line + "\n")
            for _ in range(self._drawn - len(lines)):
                self.out.write("\x1b[2K\n")
            self._drawn = max(len(lines), self._drawn)
            self.out.flush()
            return
        key = change_key(snap)
        now = time.monotonic()
        if key != self._last_key or now - self._last_print >= self.HEARTBEAT_S:
            self.out.write(plain_line(snap) + "\n")
            self.out.flush()
            self._last_key = key
            self._last_print = now

    def message(self, text: str) -> None:
        """A line printed above the live frame (the frame is redrawn below it)."""
        if self.tty and self._drawn:
            self.out.write(f"\x1b[{self._drawn}F\x1b[J")
            self._drawn = 0
        self.out.write(text + "\n")
        self.out.flush()
