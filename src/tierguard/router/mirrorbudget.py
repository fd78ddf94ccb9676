"""Pre-flight's spend cap as a hard bound: every mirrored call's worst-case cost is
reserved against this router process's share of the budget *before* the call starts.

The operator issues the budget (``RouterConfig.mirrorBudget``: an ``epoch`` and
``usdPerRouter``, docs/statistics.md "Sizing maxSpendUSD") once per pre-flight run or cap,
as ``(maxSpendUSD - what earlier epochs may have committed) / processes``, where
``processes`` is the most router processes that can be alive at once (replicas plus the
rolling update's surge, times ``router.workers``: every worker has a ledger of its own).
Each process then:

* reserves, before starting the candidate call, an upper bound of its cost (input
  tokens at most the request's UTF-8 bytes plus a per-message allowance, output tokens
  at most the call's ``max_tokens``, which the router sets on mirrored calls), and
  before the judge's two calls, an upper bound of theirs (the prompt is known then);
  a reservation that does not fit in what is left is refused and the mirror is shed;
* settles each reservation with the call's metered cost when it ends (a failed call
  settles at the bound: a provider may bill a call that failed on our side);
* never uses an epoch that was already in the first configuration it loaded: a process
  started after the epoch was issued was not counted in ``processes`` and waits for the
  next epoch -- unless it continues its own pod's share (below).

**A restarted container continues its share.** The operator issues a new epoch only for
a new pre-flight run or a raised cap, so a process that skipped the epoch would mirror
nothing for the rest of the run (with one replica, pre-flight would stall). With a ledger
file (``TIERGUARD_ROUTER_BUDGET_LEDGER``; the operator's Deployment points it into the
pod's ``emptyDir`` ``/tmp``, which outlives the container but not the pod) every change
of the share's ``committed`` is written *before* the call it reserves for starts, and a
process whose first configuration carries the epoch its file records continues that
share where the previous process stopped: the container restarted (a crash, an OOM kill,
a failed liveness probe), so that process is gone, and what it reserved for calls still
in flight stays committed. A reservation whose record cannot be written is refused. A
*new pod* (an eviction, a drain, a rolling restart) has no record and waits as before:
which dead pod's share it could take is known to nobody (docs/statistics.md). With
``--workers`` each worker has a file of its own (the path plus ``.worker<index>``).

So the spend of an epoch is at most ``processes * usdPerRouter``, in flight included,
whatever the arrival process, and the total at most ``maxSpendUSD``. Pure bookkeeping:
:mod:`tierguard.router.mirroring` calls it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tierguard.api import constants as c
from tierguard.api.policy import Pricing
from tierguard.router.pairwise import JUDGE_MAX_TOKENS

#: output tokens a mirrored candidate call may produce when the request sets no limit
MIRROR_MAX_OUTPUT_TOKENS = 4096
#: prompt tokens a chat template may add per message, and per call
TOKENS_PER_MESSAGE = 16
TOKENS_PER_CALL = 64
#: slack for float rounding in the ledger
EPS = 1e-12
#: the ledger file's path (router/cli.py; the operator's Deployment sets it)
LEDGER_ENV = c.ENV_ROUTER_BUDGET_LEDGER

log = logging.getLogger(__name__)


def _per_token(pricing: Pricing) -> tuple[float, float]:
    cached = pricing.cached_input_per_million_tokens
    inp = max(pricing.input_per_million_tokens, cached if cached is not None else 0.0)
    return inp / 1e6, pricing.output_per_million_tokens / 1e6


def _bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8"))
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def output_limit(body: Mapping[str, Any]) -> int:
    """The output tokens a mirrored call may produce: the request's own limit, at most
    :data:`MIRROR_MAX_OUTPUT_TOKENS` (the router sets it on the call)."""
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return min(value, MIRROR_MAX_OUTPUT_TOKENS)
    return MIRROR_MAX_OUTPUT_TOKENS


def candidate_bound(pricing: Pricing, body: Mapping[str, Any]) -> float:
    """Upper bound (USD) of a mirrored candidate call: every prompt token is at least one
    byte of the messages (byte-level tokenizers), plus the template's tokens."""
    messages = body.get("messages")
    msgs: Sequence[Any] = messages if isinstance(messages, list) else []
    tokens_in = sum(_bytes(m) for m in msgs) + TOKENS_PER_MESSAGE * len(msgs) + TOKENS_PER_CALL
    per_in, per_out = _per_token(pricing)
    return tokens_in * per_in + output_limit(body) * per_out


def judge_bound(pricing: Pricing, prompts: Sequence[str]) -> float:
    """Upper bound (USD) of the judge's calls on these prompts (one per order)."""
    per_in, per_out = _per_token(pricing)
    return sum(
        (_bytes(p) + TOKENS_PER_MESSAGE + TOKENS_PER_CALL) * per_in + JUDGE_MAX_TOKENS * per_out
        for p in prompts
    )


@dataclass
class MirrorBudget:
    """One process's share of one epoch: ``committed`` is settled spend plus the
    reservations of calls still running."""

    allowance: float
    committed: float = 0.0
    refused: int = 0
    #: records ``committed`` after each change (the ledger file); raises OSError when it
    #: cannot, and a reservation it could not record is refused
    record: Callable[[MirrorBudget], None] | None = field(default=None, repr=False, compare=False)

    @property
    def left(self) -> float:
        return max(0.0, self.allowance - self.committed)

    def try_reserve(self, bound: float) -> bool:
        """Reserve ``bound`` USD, or refuse when it does not fit in what is left (or
        cannot be recorded)."""
        if bound < 0:
            raise ValueError(f"a reservation cannot be negative: {bound}")
        if self.committed + bound > self.allowance + EPS:
            self.refused += 1
            return False
        self.committed += bound
        if self.record is not None:
            try:
                self.record(self)
            except OSError as exc:
                self.committed -= bound
                self.refused += 1
                log.warning("pre-flight budget: cannot record a reservation, refused: %s", exc)
                return False
        return True

    def settle(self, reserved: float, actual: float) -> None:
        """A reserved call ended and cost ``actual``. A metered cost above the bound
        (a provider ignoring max_tokens) is counted as it is, so the ledger stays true
        and the next reservations are refused sooner. (A settlement that cannot be
        recorded leaves the file with the reservation: more committed, never less.)"""
        self.committed += max(0.0, actual) - reserved
        if self.record is not None:
            with contextlib.suppress(OSError):
                self.record(self)


class BudgetLedger:
    """The epochs a process has seen (kept across configuration reloads). ``path``: the
    ledger file of this process's share (None: none; a restart skips the epoch)."""

    def __init__(self, path: Path | None = None) -> None:
        self._path = path
        self._loaded = False
        self._epoch: str | None = None
        self._budget: MirrorBudget | None = None
        self._skipped: str | None = None
        self.resumed = False  # the share was continued from the file at start

    def apply(self, epoch: str | None, usd_per_router: float) -> None:
        """A configuration was loaded. The first one's epoch is skipped: this process was
        not counted when it was issued; unless the ledger file records that epoch (the
        share of this pod's previous container, continued)."""
        first = not self._loaded
        self._loaded = True
        if epoch is None:
            self._epoch, self._budget, self._skipped = None, None, None
            return
        if epoch == self._epoch:
            if self._budget is not None and usd_per_router < self._budget.allowance:
                self._budget.allowance = usd_per_router
                with contextlib.suppress(OSError):  # the file's allowance is only higher
                    self._write(self._budget, epoch)
            return
        self._epoch = epoch
        recorded = self._recorded(epoch) if first else None
        if recorded is not None:
            allowance, committed = recorded
            self._budget = MirrorBudget(
                min(allowance, usd_per_router), committed, record=self._recorder(epoch)
            )
            self.resumed = True
            log.info(
                "pre-flight budget: continuing epoch %s from %s (%.6f of %.6f USD committed)",
                epoch,
                self._path,
                committed,
                self._budget.allowance,
            )
        elif first or epoch == self._skipped:
            self._skipped, self._budget = epoch, MirrorBudget(0.0)
        else:
            self._budget = MirrorBudget(usd_per_router, record=self._recorder(epoch))
            try:
                self._write(self._budget, epoch)
            except OSError as exc:
                # no record of this epoch exists, so none can mislead a restart: spend
                # the share unrecorded (a restart then skips it, as without a file)
                log.warning("pre-flight budget: cannot record the share in %s: %s", self._path, exc)
                self._budget.record = None

    def _recorded(self, epoch: str) -> tuple[float, float] | None:
        """(allowance, committed) the file records for ``epoch`` (None: no such record)."""
        if self._path is None:
            return None
        try:
            raw = json.loads(self._path.read_text(encoding="utf-8"))
            if raw.get("epoch") != epoch:
                return None
            return float(raw["allowance"]), float(raw["committed"])
        except (OSError, ValueError, TypeError, KeyError, AttributeError):
            return None

    def _recorder(self, epoch: str) -> Callable[[MirrorBudget], None]:
        return lambda budget: self._write(budget, epoch)

    def _write(self, budget: MirrorBudget, epoch: str) -> None:
        """Record ``budget``, the share of ``epoch``, atomically (a new file renamed over
        the old). Only the current epoch's: a call of an earlier epoch that settles after
        a new one arrived leaves the new share's record alone."""
        if self._path is None or epoch != self._epoch:
            return
        doc = {"epoch": epoch, "allowance": budget.allowance, "committed": budget.committed}
        tmp = self._path.with_name(self._path.name + ".tmp")
        tmp.write_text(json.dumps(doc), encoding="utf-8")
        os.replace(tmp, self._path)

    @property
    def budget(self) -> MirrorBudget | None:
        """The current epoch's share (None: no budget configured, mirroring unlimited --
        only hand-written configurations; the operator always sends one)."""
        return self._budget

    @property
    def skipped(self) -> bool:
        """Whether the current epoch was issued before this process started."""
        return self._epoch is not None and self._epoch == self._skipped
