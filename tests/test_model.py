"""Model-based test: random sequences of TradeBoss traffic through the real
facade, checked answer by answer against a small in-memory model of the spec.

`make test` runs a modest number of examples; `make soak` (LEDGER_SOAK=1) many more.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc
import httpx
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
    run_state_machine_as_test,
)

from ledger_client import pb, pb_grpc

from .ledger_calls import outcome_of
from .tradeboss import CANCEL, EXECUTE, QUERY, check_envelope

SOAK = os.environ.get("LEDGER_SOAK") == "1"
AMOUNTS = st.sampled_from(["0.01", "0.50", "1.00", "2.25", "5.00", "10.00", "40.00"])
OPERATIONS = st.sampled_from(["OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"])
# Identified executes refused for their content: (change to the body, code).
# Each is recorded: a repeat gets the code again, a cancel US_0000001.
BAD_EXECUTES = st.sampled_from(
    [
        ({"amount": "1.001"}, "LW_1005"),
        ({"amount": "ten"}, "LW_1003"),
        ({"bizType": 1.5}, "LW_1002"),
        ({"currency": "XYZ"}, "LW_3001"),
        ({"userName": "not-the-owner"}, "LW_3002"),
        ({"amount": "1.00001", "amountDigits": 5}, "LW_3003"),
    ]
)
# Lawful variants of an execute (TradeBoss may send them): nothing is lost.
EXECUTE_VARIANTS = st.sampled_from(
    [{}, {"bizType": "1"}, {"amountDigits": "2"}, {"ip": ""}, {"metadata": {"k": [1]}}]
)
# Fields of a cancel the reversal does not use: it settles whatever they are.
CANCEL_VARIANTS = st.sampled_from(
    [
        {},
        {"amount": "-3.0000"},
        {"cancelRemark": None},
        {"amountDigits": "x"},
        {"requestUniqueNo": None},
        {"currency": None, "userName": None},
        {"ip": "", "metadata": {"retry": 2}},
    ]
)


@dataclass
class Hold:
    wallet: int
    amount: Decimal
    state: str = "open"  # posted, voided
    posted: Decimal = Decimal(0)


@dataclass
class Execute:
    wallet: int
    body: dict[str, Any]
    code: str
    delta: Decimal  # what the model says moved
    reversed: bool = False


class TradeBossModel(RuleBasedStateMachine):
    """The spec's rules, written as plainly as possible."""

    facade_url = ""
    ledger_target = ""

    def __init__(self) -> None:
        super().__init__()
        self.http = httpx.Client(base_url=self.facade_url, timeout=10)
        self.channel = grpc.insecure_channel(self.ledger_target)
        self.stub = pb_grpc.LedgerServiceStub(self.channel)
        self.wallets: list[tuple[str, str]] = []  # (customer, userName)
        self.balances: list[Decimal] = []
        self.executes: dict[str, Execute] = {}
        # Insertion-ordered, so that hypothesis draws replay the same choices.
        self.tombstones: dict[str, int] = {}  # number -> wallet (numbers are per customer)
        self.cancels: dict[str, tuple[dict[str, Any], str]] = {}
        # Internal services' side: what holds reserve, and transfers' answers.
        self.held: list[Decimal] = []
        self.holds: dict[str, Hold] = {}
        self.transfers: dict[str, tuple[pb.CreateTransferRequest, int]] = {}

    def teardown(self) -> None:
        self.http.close()
        self.channel.close()

    # --- plumbing --------------------------------------------------------------

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        trace = uuid.uuid4().hex
        headers = {
            "trace": trace,
            "companyId": "1",
            "timestamp": str(int(time.time() * 1000)),
            "content-type": "application/json",
        }
        return check_envelope(path, self.http.post(path, json=body, headers=headers), trace)

    def _wallet_fields(self, index: int) -> dict[str, Any]:
        customer, user_name = self.wallets[index]
        return {"thirdServerCode": customer, "userName": user_name, "currency": "USD"}

    def _execute_body(self, index: int, operation: str, amount: str, number: str) -> dict[str, Any]:
        return {
            **self._wallet_fields(index),
            "bizType": 1,
            "operationType": operation,
            "amount": amount,
            "amountDigits": 2,
            "orderId": 77,
            "requestUniqueNo": number,
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.1",
        }

    # --- rules -----------------------------------------------------------------

    @initialize()
    def open_wallets(self) -> None:
        for _ in range(2):
            customer, user_name = f"model-{uuid.uuid4().hex[:12]}", f"u-{uuid.uuid4().hex[:8]}"
            key = pb.AccountKey(company_id=1, customer=customer, currency="USD")
            self.stub.OpenAccount(pb.OpenAccountRequest(account=key, digits=2, user_name=user_name))
            self.wallets.append((customer, user_name))
            self.balances.append(Decimal("0.00"))
            self.held.append(Decimal("0.00"))

    @rule(index=st.integers(0, 1), amount=AMOUNTS)
    def deposit(self, index: int, amount: str) -> None:
        customer, _ = self.wallets[index]
        key = pb.AccountKey(company_id=1, customer=customer, currency="USD")
        answer = self.stub.Deposit(
            pb.DepositRequest(account=key, amount=amount, request_id=uuid.uuid4().hex)
        )
        assert outcome_of(answer) == "APPLIED"
        self.balances[index] += Decimal(amount)

    @rule(index=st.integers(0, 1), operation=OPERATIONS, amount=AMOUNTS, variant=EXECUTE_VARIANTS)
    def execute(self, index: int, operation: str, amount: str, variant: dict[str, Any]) -> None:
        self._execute(index, operation, amount, f"exe-{uuid.uuid4().hex}", variant)

    @rule(index=st.integers(0, 1), bad=BAD_EXECUTES)
    def bad_execute(self, index: int, bad: tuple[dict[str, Any], str]) -> None:
        change, code = bad
        number = f"bad-{uuid.uuid4().hex}"
        body = {**self._execute_body(index, "OPEN_POSITION", "1.00", number), **change}
        answer = self._post(EXECUTE, body)
        assert answer["code"] == code, answer
        self.executes[number] = Execute(index, body, code, Decimal(0))

    def _execute(
        self, index: int, operation: str, amount: str, number: str, variant: dict[str, Any]
    ) -> None:
        if operation == "ABNORMAL_OVERTRADING":
            amount = "-" + amount
        signed = Decimal(amount)
        if self.tombstones.get(number) == index:
            code, delta = "LW_4003", Decimal(0)
        elif operation == "OPEN_POSITION" and self._available(index) - signed < 0:
            code, delta = "LW_4001", Decimal(0)
        else:
            code = "0"
            delta = -signed if operation == "OPEN_POSITION" else signed
        body = {**self._execute_body(index, operation, amount, number), **variant}
        answer = self._post(EXECUTE, body)
        assert answer["code"] == code, (answer, self.balances[index])
        self.balances[index] += delta
        self.executes[number] = Execute(index, body, code, delta)

    @precondition(lambda self: self.executes)
    @rule(data=st.data())
    def repeat_execute(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(list(self.executes)))
        first = self.executes[number]
        answer = self._post(EXECUTE, {**first.body, "requestTime": first.body["requestTime"] + 1})
        # A cancelled number never answers success again.
        assert answer["code"] == ("LW_4003" if first.reversed else first.code)

    @precondition(lambda self: self.executes)
    @rule(data=st.data())
    def conflicting_repeat(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(list(self.executes)))
        first = self.executes[number]
        changed = {**first.body, "orderId": first.body["orderId"] + 1}
        answer = self._post(EXECUTE, changed)
        if self.tombstones.get(number) == first.wallet or first.reversed:
            assert answer["code"] == "LW_4003"
        else:
            assert (answer["code"], answer["msgParams"]) == ("LW_4002", "orderId")

    @rule(data=st.data(), variant=CANCEL_VARIANTS)
    def cancel(self, data: st.DataObject, variant: dict[str, Any]) -> None:
        known = list(self.executes) + list(self.tombstones)
        target = data.draw(
            st.sampled_from(known)
            if known and data.draw(st.booleans())
            else st.just(f"lost-{uuid.uuid4().hex}")
        )
        execute = self.executes.get(target)
        if execute is not None:
            index = execute.wallet
        elif target in self.tombstones:
            index = self.tombstones[target]
        else:
            index = data.draw(st.integers(0, 1))
        if target in self.tombstones:
            code = "US_0000002"
        elif execute is None:
            code = "US_0000002"
            self.tombstones[target] = index
        elif execute.code == "0":
            code = "0"
            if not execute.reversed:
                execute.reversed = True
                self.balances[index] -= execute.delta
        else:
            code = "US_0000001"
        # TradeBoss's cancel names the execute's own account fields.
        names = {"thirdServerCode", "userName", "currency"}
        account = (
            {name: execute.body[name] for name in names}
            if execute is not None
            else self._wallet_fields(index)
        )
        number = f"cxl-{uuid.uuid4().hex}"
        body = {
            **account,
            "bizType": 1,
            "amount": "1.00",
            "amountDigits": 2,
            "requestUniqueNo": number,
            "reverseRequestUniqueNo": target,
            "requestTime": int(time.time() * 1000),
            "ip": "203.0.113.1",
            "cancelRemark": "model",
        }
        for name, value in variant.items():
            if value is None:
                body.pop(name)
            else:
                body[name] = value
        answer = self._post(CANCEL, body)
        assert answer["code"] == code, answer
        self.cancels[number] = (body, code)

    @precondition(lambda self: self.cancels)
    @rule(data=st.data())
    def repeat_cancel(self, data: st.DataObject) -> None:
        number = data.draw(st.sampled_from(list(self.cancels)))
        body, code = self.cancels[number]
        # A repeat (or, without its own number, another cancel of the same
        # execute) settles the same way.
        assert self._post(CANCEL, body)["code"] == code

    @precondition(lambda self: [n for n in self.tombstones if n not in self.executes])
    @rule(data=st.data(), operation=OPERATIONS, amount=AMOUNTS)
    def late_execute(self, data: st.DataObject, operation: str, amount: str) -> None:
        number = data.draw(st.sampled_from([n for n in self.tombstones if n not in self.executes]))
        self._execute(self.tombstones[number], operation, amount, number, {})

    @rule(index=st.integers(0, 1))
    def query(self, index: int) -> None:
        answer = self._post(QUERY, self._wallet_fields(index))
        assert answer["code"] == "0"
        assert answer["data"]["amount"] == f"{self._available(index):.2f}"

    # --- internal services: transfers and holds between the two wallets ---------

    def _available(self, index: int) -> Decimal:
        return self.balances[index] - self.held[index]

    def _key(self, index: int) -> pb.AccountKey:
        return pb.AccountKey(company_id=1, customer=self.wallets[index][0], currency="USD")

    @rule(index=st.integers(0, 1), amount=AMOUNTS)
    def transfer(self, index: int, amount: str) -> None:
        request = pb.CreateTransferRequest(
            transfer_id=f"tr-{uuid.uuid4().hex}",
            debit_account=self._key(index),
            credit_customer=self.wallets[1 - index][0],
            amount=amount,
        )
        answer = self.stub.CreateTransfer(request)
        if self._available(index) < Decimal(amount):
            assert answer.result == pb.TRANSFER_RESULT_INSUFFICIENT_BALANCE
        else:
            assert answer.result == pb.TRANSFER_RESULT_APPLIED
            self.balances[index] -= Decimal(amount)
            self.balances[1 - index] += Decimal(amount)
        self.transfers[request.transfer_id] = (request, answer.result)

    @precondition(lambda self: self.transfers)
    @rule(data=st.data())
    def repeat_transfer(self, data: st.DataObject) -> None:
        request, result = self.transfers[data.draw(st.sampled_from(list(self.transfers)))]
        answer = self.stub.CreateTransfer(request)
        assert (answer.result, answer.replayed) == (result, True)

    @rule(index=st.integers(0, 1), amount=AMOUNTS)
    def hold(self, index: int, amount: str) -> None:
        hold_id = f"hold-{uuid.uuid4().hex}"
        answer = self.stub.CreateHold(
            pb.CreateHoldRequest(
                hold_id=hold_id,
                debit_account=self._key(index),
                credit_customer=self.wallets[1 - index][0],
                amount=amount,
            )
        )
        if self._available(index) < Decimal(amount):
            assert answer.result == pb.HOLD_RESULT_INSUFFICIENT_BALANCE
            return
        assert answer.result == pb.HOLD_RESULT_APPLIED
        assert answer.balance.available == f"{self._available(index) - Decimal(amount):.2f}"
        self.held[index] += Decimal(amount)
        self.holds[hold_id] = Hold(index, Decimal(amount))

    @precondition(lambda self: self.holds)
    @rule(data=st.data(), part=st.sampled_from(["", "half"]))
    def post_hold(self, data: st.DataObject, part: str) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        hold = self.holds[hold_id]
        half = max((hold.amount / 2).quantize(Decimal("0.01")), Decimal("0.01"))
        amount = half if part else hold.amount
        answer = self.stub.PostHold(
            pb.PostHoldRequest(
                debit_account=self._key(hold.wallet),
                hold_id=hold_id,
                amount=f"{amount:.2f}" if part else "",
            )
        )
        if hold.state == "voided":
            assert answer.result == pb.POST_HOLD_RESULT_ALREADY_VOIDED
        elif hold.state == "posted":
            expected = (
                pb.POST_HOLD_RESULT_APPLIED
                if amount == hold.posted
                else pb.POST_HOLD_RESULT_EXISTS_WITH_DIFFERENT_AMOUNT
            )
            assert answer.result == expected
        else:
            assert (answer.result, answer.replayed) == (pb.POST_HOLD_RESULT_APPLIED, False)
            hold.state, hold.posted = "posted", amount
            self.held[hold.wallet] -= hold.amount
            self.balances[hold.wallet] -= amount
            self.balances[1 - hold.wallet] += amount

    @precondition(lambda self: self.holds)
    @rule(data=st.data())
    def void_hold(self, data: st.DataObject) -> None:
        hold_id = data.draw(st.sampled_from(list(self.holds)))
        hold = self.holds[hold_id]
        answer = self.stub.VoidHold(
            pb.VoidHoldRequest(debit_account=self._key(hold.wallet), hold_id=hold_id)
        )
        if hold.state == "posted":
            assert answer.result == pb.VOID_HOLD_RESULT_ALREADY_POSTED
            return
        assert (answer.result, answer.replayed) == (
            pb.VOID_HOLD_RESULT_APPLIED,
            hold.state == "voided",
        )
        if hold.state == "open":
            hold.state = "voided"
            self.held[hold.wallet] -= hold.amount


def test_facade_and_ledger_follow_the_model(facade, ledger_server):
    TradeBossModel.facade_url = facade.url
    TradeBossModel.ledger_target = ledger_server.target
    run_state_machine_as_test(
        TradeBossModel,
        settings=settings(
            max_examples=400 if SOAK else int(os.environ.get("LEDGER_MODEL_EXAMPLES", "12")),
            stateful_step_count=60 if SOAK else 25,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
    # And the books prove every sequence: conservation, holds, transfers.
    with grpc.insecure_channel(ledger_server.target) as channel:
        answers = list(pb_grpc.LedgerServiceStub(channel).Reconcile(pb.ReconcileRequest()))
    found = [answer.discrepancy for answer in answers if answer.HasField("discrepancy")]
    assert found == []
    assert answers[-1].summary.discrepancies == 0
