"""TradeBoss's execute and cancel: where trading moves money.

Python checks the input and decides the signed amount (money.py); the
transaction itself is one call of a server-side function, `ledger_adjust` or
`ledger_cancel` (migrations/0003_money_movements.sql), which locks the wallet,
looks up the request number, refuses an overdraft, posts the journal entry and
records the request: one round trip, whole or not at all.
"""

from __future__ import annotations

import logging
from decimal import Decimal

import asyncpg

from protos.ledger.v1 import ledger_pb2 as pb

from . import accounts, money, validation
from .database import fetch_one, run_transaction
from .errors import LedgerError
from .model import AccountKey, AdjustCommand, AdjustResult, Balance, CancelCommand, CancelResult
from .money import OvertradingPolicy
from .request_records import RequestRecord, first_difference

log = logging.getLogger(__name__)

_ADJUST = "SELECT * FROM ledger_adjust($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
_CANCEL = (
    "SELECT * FROM ledger_cancel($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
)

_OUTCOME_OF_STATUS = {
    "APPLIED": pb.OUTCOME_APPLIED,
    "INSUFFICIENT_BALANCE": pb.OUTCOME_INSUFFICIENT_BALANCE,
    "REVERSED": pb.OUTCOME_REVERSED,
    "ALREADY_REVERSED": pb.OUTCOME_ALREADY_REVERSED,
    "NOT_APPLIED": pb.OUTCOME_NOT_APPLIED,
    "NEVER_RECEIVED": pb.OUTCOME_NEVER_RECEIVED,
}


def _validate_common(command: AdjustCommand | CancelCommand) -> None:
    validation.account_key(command.account)
    validation.text(command.user_name, "user_name", validation.MAX_USER_NAME)
    validation.text(command.request_unique_no, "request_unique_no", validation.MAX_REQUEST_NO)
    validation.digits(command.amount_digits, "amount_digits")
    validation.text(command.client_ip, "client_ip", validation.MAX_CLIENT_IP, required=False)
    validation.text(command.metadata, "metadata", validation.MAX_REMARK, required=False)


async def adjust(
    pool: asyncpg.Pool,
    command: AdjustCommand,
    policy: OvertradingPolicy,
    trace_id: str,
    deadline: float,
) -> AdjustResult:
    """Execute an adjustment once per request_unique_no (checks in the proto's Outcome order)."""
    _validate_common(command)
    operation_type = validation.operation_type(command.operation_type)
    operation = pb.OperationType.Name(operation_type).removeprefix("OPERATION_TYPE_")
    amount = money.parse_amount(command.amount, command.amount_digits)
    money.check_sign(operation_type, amount)
    delta, applied_policy = money.adjustment_delta(operation_type, amount, policy)
    key = command.account

    async def transaction(connection: asyncpg.Connection) -> asyncpg.Record:
        return await fetch_one(
            connection,
            _ADJUST,
            key.company_id,
            key.customer,
            key.currency,
            command.user_name,
            command.request_unique_no,
            operation,
            amount,
            command.amount_digits,
            delta,
            money.may_overdraw(operation_type),
            applied_policy.value if applied_policy else None,
            command.biz_type,
            command.order_id,
            command.request_time_ms,
            command.client_ip,
            command.metadata,
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline)
    balance = _balance(key, row, command.amount_digits)
    if row["status"] == "SEEN":
        return _repeat_of_adjustment(
            RequestRecord(**dict(row["seen"])), command, operation, amount, balance
        )
    outcome = _OUTCOME_OF_STATUS[row["status"]]
    if outcome != pb.OUTCOME_APPLIED:
        return AdjustResult(outcome, balance)
    return AdjustResult(outcome, balance, delta, applied_policy)


def _repeat_of_adjustment(
    seen: RequestRecord,
    command: AdjustCommand,
    operation: str,
    amount: Decimal,
    balance: Balance,
) -> AdjustResult:
    if seen.kind == "tombstone":
        # A cancel already gave this number up: TradeBoss considers the trade
        # cancelled, so money must never move for it.
        log.warning(
            "execute %s arrived after its cancel %s; refused",
            command.request_unique_no,
            seen.reverse_request_unique_no,
        )
        return AdjustResult(pb.OUTCOME_ALREADY_CANCELLED, balance)
    different = first_difference(
        [
            ("kind", seen.kind, "adjustment"),
            ("currency", seen.currency, command.account.currency),
            ("user_name", seen.user_name, command.user_name),
            ("operation_type", seen.operation_type, operation),
            ("amount", seen.amount, amount),
            ("amount_digits", seen.amount_digits, command.amount_digits),
            ("biz_type", seen.biz_type, command.biz_type),
            ("order_id", seen.order_id, command.order_id),
        ]
    )
    if different:
        return AdjustResult(pb.OUTCOME_CONFLICT, balance, conflict_field=different)
    policy = OvertradingPolicy(seen.overtrading_policy) if seen.overtrading_policy else None
    return AdjustResult(seen.outcome_value, balance, seen.applied_amount, policy, replayed=True)


async def cancel_adjustment(
    pool: asyncpg.Pool, command: CancelCommand, trace_id: str, deadline: float
) -> CancelResult:
    """Reverse an adjustment once, or tombstone a number never received."""
    _validate_common(command)
    validation.text(
        command.reverse_request_unique_no, "reverse_request_unique_no", validation.MAX_REQUEST_NO
    )
    validation.text(command.cancel_remark, "cancel_remark", validation.MAX_REMARK)
    if command.reverse_request_unique_no == command.request_unique_no:
        raise LedgerError(
            pb.OUTCOME_INVALID_ARGUMENT,
            "a cancel cannot name its own request_unique_no",
            "reverse_request_unique_no",
        )
    amount = money.parse_amount(command.amount, command.amount_digits)
    money.require_positive(amount, "a cancel")
    key = command.account

    async def transaction(connection: asyncpg.Connection) -> asyncpg.Record:
        return await fetch_one(
            connection,
            _CANCEL,
            key.company_id,
            key.customer,
            key.currency,
            command.user_name,
            command.request_unique_no,
            command.reverse_request_unique_no,
            amount,
            command.amount_digits,
            command.biz_type,
            command.order_id,
            command.request_time_ms,
            command.client_ip,
            command.metadata,
            command.cancel_remark,
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline)
    balance = _balance(key, row, command.amount_digits)
    status = row["status"]
    if status == "SEEN":
        return _repeat_of_cancel(RequestRecord(**dict(row["seen"])), command, amount, balance)
    if status.startswith("TARGET_"):
        field = {
            "TARGET_CURRENCY_MISMATCH": "currency",
            "TARGET_USER_NAME_MISMATCH": "user_name",
        }.get(status, "reverse_request_unique_no")
        raise LedgerError(
            pb.OUTCOME_CANCEL_TARGET_MISMATCH,
            f"the cancel's {field} does not match the request it names"
            if field != "reverse_request_unique_no"
            else f"{command.reverse_request_unique_no!r} is not an adjustment",
            field,
        )
    if status == "REVERSED" and row["target_amount"] is not None:
        if abs(row["target_amount"]) != amount:
            log.warning(
                "cancel %s names %s for %s but %s was requested; reversed what was applied",
                command.request_unique_no,
                command.reverse_request_unique_no,
                amount,
                abs(row["target_amount"]),
            )
    return CancelResult(
        _OUTCOME_OF_STATUS[status],
        balance,
        row["reversed_amount"],
        tombstone_written=row["tombstone_written"],
    )


def _repeat_of_cancel(
    seen: RequestRecord, command: CancelCommand, amount: Decimal, balance: Balance
) -> CancelResult:
    different = first_difference(
        [
            ("kind", seen.kind, "cancel"),
            ("currency", seen.currency, command.account.currency),
            ("user_name", seen.user_name, command.user_name),
            (
                "reverse_request_unique_no",
                seen.reverse_request_unique_no,
                command.reverse_request_unique_no,
            ),
            ("amount", seen.amount, amount),
            ("amount_digits", seen.amount_digits, command.amount_digits),
        ]
    )
    if different:
        return CancelResult(pb.OUTCOME_CONFLICT, balance, conflict_field=different)
    return CancelResult(seen.outcome_value, balance, seen.applied_amount, replayed=True)


def _balance(key: AccountKey, row: asyncpg.Record, amount_digits: int) -> Balance:
    accounts.raise_wallet_refusal(row["status"], key, amount_digits, row["digits"])
    return Balance(key, row["balance"], row["digits"], row["user_name"] or "")
