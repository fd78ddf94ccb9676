"""Pre-flight's per-process budget (router/mirrorbudget.py): worst-case cost bounds,
reservations that never let committed spend exceed the share, and the epoch rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from specs import one_model_spec
from tierguard.api.policy import Pricing
from tierguard.router.mirrorbudget import (
    MIRROR_MAX_OUTPUT_TOKENS,
    BudgetLedger,
    MirrorBudget,
    candidate_bound,
    judge_bound,
    output_limit,
)
from tierguard.router.pairwise import JUDGE_MAX_TOKENS, pairwise_prompt

PRICE = Pricing(input_per_million_tokens=3.0, output_per_million_tokens=15.0)


def test_the_candidate_bound_covers_any_bill_the_call_can_produce() -> None:
    body = {"messages": [{"role": "user", "content": "héllo wörld " * 50}], "max_tokens": 300}
    bound = candidate_bound(PRICE, body)
    # a prompt of at most one token per byte plus the template, and 300 output tokens
    text_bytes = len(("héllo wörld " * 50).encode())
    worst = ((text_bytes + 100) * 3.0 + 300 * 15.0) / 1e6
    assert bound >= worst * 0.99 and bound < 2 * worst
    assert output_limit({}) == MIRROR_MAX_OUTPUT_TOKENS
    assert output_limit({"max_tokens": 10**6}) == MIRROR_MAX_OUTPUT_TOKENS
    assert output_limit({"max_completion_tokens": 50, "max_tokens": 70}) == 50
    cached = Pricing(
        input_per_million_tokens=1.0,
        output_per_million_tokens=0.0,
        cached_input_per_million_tokens=2.0,
    )
    assert candidate_bound(cached, body) > candidate_bound(
        Pricing(input_per_million_tokens=1.0), body
    )


def test_the_judge_bound_counts_both_orders_and_their_output_limit() -> None:
    prompts = [pairwise_prompt("q?", "a", "b"), pairwise_prompt("q?", "b", "a")]
    one = judge_bound(PRICE, prompts[:1])
    assert judge_bound(PRICE, prompts) == pytest.approx(2 * one)
    assert one > JUDGE_MAX_TOKENS * 15.0 / 1e6


def test_a_reservation_that_does_not_fit_is_refused() -> None:
    b = MirrorBudget(1.0)
    assert b.try_reserve(0.6) and not b.try_reserve(0.6) and b.refused == 1
    b.settle(0.6, 0.1)
    assert b.committed == pytest.approx(0.1) and b.try_reserve(0.6)
    assert b.left == pytest.approx(0.3)
    with pytest.raises(ValueError):
        b.try_reserve(-1.0)


@given(
    hs.lists(
        hs.tuples(hs.floats(0.0, 0.5), hs.floats(0.0, 1.0), hs.booleans()),
        min_size=1,
        max_size=60,
    )
)
def test_committed_spend_never_exceeds_the_share_in_flight_included(
    calls: list[tuple[float, float, bool]],
) -> None:
    """Calls reserve their bound, some end (billing a share of it) while others are
    still in flight: the committed total and the billed total stay within the share."""
    b = MirrorBudget(1.0)
    running: list[float] = []
    billed = 0.0
    for bound, used, ends_one in calls:
        if b.try_reserve(bound):
            running.append(bound)
        if ends_one and running:
            reserved = running.pop(0)
            billed += reserved * used
            b.settle(reserved, reserved * used)
        assert b.committed <= 1.0 + 1e-9
        assert billed + sum(running) <= 1.0 + 1e-9


def test_a_process_never_uses_the_epoch_of_its_first_configuration() -> None:
    late = BudgetLedger()
    late.apply("rev/0/1", 5.0)  # started after the epoch was issued: not counted in it
    assert late.skipped and late.budget is not None and late.budget.allowance == 0.0
    late.apply("rev/0/1", 5.0)  # a reload of the same epoch changes nothing
    assert late.budget.allowance == 0.0
    late.apply("rev/0/2", 2.0)  # the next epoch is its own
    assert not late.skipped and late.budget.allowance == 2.0

    early = BudgetLedger()
    early.apply(None, 0.0)  # no pre-flight yet: no budget, nothing mirrored by the operator
    assert early.budget is None
    early.apply("rev/0/1", 5.0)
    budget = early.budget
    assert budget is not None and budget.allowance == 5.0
    assert budget.try_reserve(4.0)
    early.apply("rev/0/1", 5.0)
    assert early.budget is budget and budget.left == pytest.approx(1.0)


def test_a_restarted_container_continues_its_pods_share(tmp_path: Path) -> None:
    """The ledger file (in the pod's emptyDir) records every change of the share before
    the call starts: the next container of the pod continues the epoch where the last
    one stopped, its calls in flight still committed; a new pod (no file) waits."""
    path = tmp_path / "ledger.json"
    first = BudgetLedger(path)
    first.apply(None, 0.0)
    first.apply("rev/0/1", 1.0)  # issued while this process ran: counted
    b = first.budget
    assert b is not None and b.try_reserve(0.5) and b.try_reserve(0.2)
    b.settle(0.5, 0.1)  # one call ended; the 0.2 one is in flight when the process dies
    assert b.committed == pytest.approx(0.3)

    restarted = BudgetLedger(path)
    restarted.apply("rev/0/1", 1.0)  # its first configuration already carries the epoch
    again = restarted.budget
    assert not restarted.skipped and restarted.resumed and again is not None
    assert again.allowance == pytest.approx(1.0) and again.committed == pytest.approx(0.3)
    assert again.try_reserve(0.7) and not again.try_reserve(0.01)  # never beyond the share
    # and the next restart continues from there
    third = BudgetLedger(path)
    third.apply("rev/0/1", 1.0)
    assert third.budget is not None and third.budget.left == pytest.approx(0.0)

    new_pod = BudgetLedger(tmp_path / "other-pod.json")
    new_pod.apply("rev/0/1", 1.0)
    assert new_pod.skipped and new_pod.budget is not None and new_pod.budget.allowance == 0.0
    no_file = BudgetLedger()
    no_file.apply("rev/0/1", 1.0)
    assert no_file.skipped


def test_a_record_of_another_epoch_or_an_unreadable_one_is_no_share(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    old = BudgetLedger(path)
    old.apply(None, 0.0)
    old.apply("rev/0/1", 1.0)
    restarted = BudgetLedger(path)
    restarted.apply("rev/0/2", 3.0)  # a cap raised while the container was down
    assert restarted.skipped and not restarted.resumed
    path.write_text("{not json", encoding="utf-8")
    broken = BudgetLedger(path)
    broken.apply("rev/0/1", 1.0)
    assert broken.skipped
    # a lower share in the configuration than on file: the lower one
    path.write_text(json.dumps({"epoch": "e", "allowance": 5.0, "committed": 1.0}))
    lower = BudgetLedger(path)
    lower.apply("e", 2.0)
    assert lower.budget is not None and lower.budget.allowance == 2.0


def test_a_reservation_that_cannot_be_recorded_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.json"
    ledger = BudgetLedger(path)
    ledger.apply(None, 0.0)
    ledger.apply("rev/0/1", 1.0)
    b = ledger.budget
    assert b is not None and b.try_reserve(0.25)

    def full_disk(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("tierguard.router.mirrorbudget.os.replace", full_disk)
    assert not b.try_reserve(0.25) and b.refused == 1
    assert b.committed == pytest.approx(0.25)  # unchanged: what the file says
    b.settle(0.25, 0.0)  # a settlement that cannot be recorded: the file keeps more
    monkeypatch.undo()
    assert json.loads(path.read_text())["committed"] == pytest.approx(0.25)


def test_an_earlier_epochs_late_settlement_leaves_the_new_record_alone(tmp_path: Path) -> None:
    path = tmp_path / "ledger.json"
    ledger = BudgetLedger(path)
    ledger.apply(None, 0.0)
    ledger.apply("rev/0/1", 1.0)
    old = ledger.budget
    assert old is not None and old.try_reserve(0.5)
    ledger.apply("rev/0/2", 2.0)  # a raised cap: a new epoch while the call runs
    old.settle(0.5, 0.4)
    assert json.loads(path.read_text()) == {"epoch": "rev/0/2", "allowance": 2.0, "committed": 0}


def test_an_unwritable_path_spends_the_share_unrecorded(tmp_path: Path) -> None:
    """No record of the epoch could be made at all: nothing on file can mislead a
    restart, so the share is used as without a file (a restart skips the epoch)."""
    ledger = BudgetLedger(tmp_path / "missing-dir" / "ledger.json")
    ledger.apply(None, 0.0)
    ledger.apply("rev/0/1", 1.0)
    assert ledger.budget is not None and ledger.budget.try_reserve(0.5)
    restarted = BudgetLedger(tmp_path / "missing-dir" / "ledger.json")
    restarted.apply("rev/0/1", 1.0)
    assert restarted.skipped


def test_the_ledger_path_is_the_deployments_and_one_per_worker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The operator's Deployment sets the path into the pod's emptyDir /tmp (outlives a
    container restart, not the pod); the router adds the worker's index."""
    from tierguard.api import constants as c
    from tierguard.operator import render, rendermeta
    from tierguard.router.cli import budget_ledger_path
    from tierguard.router.workers import WORKER_ENV

    spec = one_model_spec()
    pod = render.deployment(rendermeta.PolicyRef("shop", "ns", "uid"), spec)["spec"]["template"][
        "spec"
    ]
    (router,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in router["env"]}
    names = [e["name"] for e in router["env"]]
    # named after the pod ($(POD_NAME), defined before it): local pods sharing one /tmp
    # (the lab) never share a file
    assert "$(POD_NAME)" in env[c.ENV_ROUTER_BUDGET_LEDGER]
    assert names.index("POD_NAME") < names.index(c.ENV_ROUTER_BUDGET_LEDGER)
    path = env[c.ENV_ROUTER_BUDGET_LEDGER].replace("$(POD_NAME)", "shop-router-abc")
    tmp = next(m for m in router["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
    assert next(v for v in pod["volumes"] if v["name"] == tmp["name"]).get("emptyDir") is not None

    monkeypatch.delenv(c.ENV_ROUTER_BUDGET_LEDGER, raising=False)
    monkeypatch.delenv(WORKER_ENV, raising=False)
    assert budget_ledger_path() is None
    monkeypatch.setenv(c.ENV_ROUTER_BUDGET_LEDGER, path)
    assert budget_ledger_path() == Path(path)
    monkeypatch.setenv(WORKER_ENV, "3")
    assert budget_ledger_path() == Path(path + ".worker3")
