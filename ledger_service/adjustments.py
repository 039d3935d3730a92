"""TradeBoss's execute and cancel: where trading moves money.

Python identifies the request and decides what it can without the wallet
(intake.py, money.py); the rest is one call of a server-side function,
`ledger_adjust` or `ledger_cancel` (functions/20_trading.sql), which locks the
wallet, looks up the request number, refuses an overdraft, posts the transfer
between the wallet and the company's clearing account and records the request
with its outcome, whole or not at all. Movements that arrive together share
one transaction (group_commit.py).
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import Any

import asyncpg

from . import intake, metrics, money, validation
from .errors import LedgerError
from .group_commit import GroupCommit, Movement
from .model import AccountKey, AdjustCommand, AdjustResult, Balance, CancelCommand, CancelResult
from .money import OvertradingPolicy
from .outcomes import OperationType, Outcome
from .request_records import RequestRecord, first_difference
from .statuses import MovementStatus

log = logging.getLogger(__name__)

# Messages for the refusals the wallet decides (the others carry their own).
_WALLET_REFUSALS = {
    MovementStatus.ACCOUNT_NOT_FOUND: "no wallet for this company, customer and currency",
    MovementStatus.ACCOUNT_SCALE_MISMATCH: "the amount is not exact at the wallet's currency scale",
    MovementStatus.USER_NAME_MISMATCH: "the wallet belongs to another userName",
    MovementStatus.BALANCE_LIMIT_EXCEEDED: "the balance would reach the stated maximum (10^19)",
}
_TARGET_FIELDS = {
    MovementStatus.TARGET_CURRENCY_MISMATCH: "currency",
    MovementStatus.TARGET_USER_NAME_MISMATCH: "user_name",
    MovementStatus.TARGET_NOT_ADJUSTMENT: "target_request_id",
}


def _recorded(
    command: AdjustCommand | CancelCommand, notes: list[str], trace_id: str
) -> dict[str, Any]:
    """What both webhooks record as sent: free text cut to its stored length,
    each cut noted."""
    return {
        "company_id": command.account.company_id,
        "customer": command.account.customer,
        "amount_as_sent": intake.free_text(
            command.amount, "amount", intake.MAX_AMOUNT_AS_SENT, notes
        ),
        "amount_digits": command.amount_digits,
        "biz_type": command.biz_type,
        "order_id": command.order_id,
        "request_time_ms": command.request_time_ms,
        "client_ip": intake.free_text(
            command.client_ip, "tradeboss.ip", validation.MAX_CLIENT_IP, notes
        ),
        "metadata": intake.free_text(
            command.metadata, "tradeboss.metadata", validation.MAX_REMARK, notes
        ),
        "header_timestamp_ms": command.header_timestamp_ms or None,
        "trace_id": trace_id,
    }


async def adjust(
    movements: GroupCommit,
    command: AdjustCommand,
    policy: OvertradingPolicy,
    trace_id: str,
    deadline: float,
) -> AdjustResult:
    """Execute an adjustment once per request_unique_no; every identified
    execute is recorded with its outcome, refusals included."""
    key = command.account
    intake.identify(key, command.request_unique_no, "request_id")
    refusal = intake.adjustment_refusal(command)
    amount = intake.plain_decimal_or_none(command.amount)
    operation_type = _known_operation(command.operation_type)
    operation = operation_type.name if operation_type else None
    delta, applied_policy = Decimal(0), None
    if refusal is None:
        assert amount is not None and operation_type is not None  # adjustment_refusal checked
        delta, applied_policy = money.adjustment_delta(operation_type, amount, policy)
    notes = list(command.notes)
    recorded = _recorded(command, notes, trace_id)
    movement = Movement(
        is_cancel=False,
        request_unique_no=command.request_unique_no,
        currency=intake.kept(key.currency),
        user_name=intake.kept(command.user_name),
        amount=amount,
        input_notes=intake.joined(notes),
        **recorded,
        operation_type=operation,
        refusal=Outcome(refusal.outcome).name if refusal else None,
        refused_field=refusal.field if refusal else None,
        delta=delta,
        may_overdraw=money.may_overdraw(operation_type),
        overtrading_policy=applied_policy.value if applied_policy else None,
    )
    row = await movements.apply(movement, deadline)
    balance = _balance(key, row)
    status = MovementStatus(row["status"])
    if status is MovementStatus.SEEN:
        return _repeat_of_adjustment(
            RequestRecord(**dict(row["seen"])), command, operation, amount, balance
        )
    if balance is not None and balance.digits != command.amount_digits:
        # Accepted by value, but a currency configured with another scale on
        # TradeBoss's side is worth an operator's look.
        metrics.AMOUNT_DIGITS_MISMATCHES.labels(key.currency).inc()
        log.warning(
            "amountDigits %s differs from the %s wallet's scale %s (request %s)",
            command.amount_digits,
            key.currency,
            balance.digits,
            command.request_unique_no,
        )
    outcome = Outcome[status]
    if outcome == Outcome.APPLIED:
        assert operation is not None
        metrics.money_moved(key.currency, operation, delta)
        return AdjustResult(outcome, balance, delta, applied_policy)
    metrics.REFUSALS_RECORDED.labels(outcome.name, row["refused_field"] or "").inc()
    return AdjustResult(
        outcome,
        balance,
        refused_field=row["refused_field"] or "",
        refusal_message=refusal.message if refusal else _WALLET_REFUSALS.get(status, ""),
    )


def _known_operation(value: int) -> OperationType | None:
    try:
        return OperationType(value) if value else None
    except ValueError:
        return None


def _repeat_of_adjustment(
    seen: RequestRecord,
    command: AdjustCommand,
    operation: str | None,
    amount: Decimal | None,
    balance: Balance | None,
) -> AdjustResult:
    if seen.kind == "tombstone" or seen.reversed_by is not None:
        # A cancel gave this number up or reversed it: TradeBoss considers the
        # trade cancelled, so it never answers success again.
        log.warning(
            "execute %s arrived after its cancel %s; refused",
            command.request_unique_no,
            seen.reverse_request_unique_no or seen.reversed_by,
        )
        return AdjustResult(Outcome.ALREADY_CANCELLED, balance)
    different = first_difference(
        [
            ("kind", seen.kind, "adjustment"),
            ("currency", seen.currency, intake.kept(command.account.currency)),
            ("user_name", seen.user_name, intake.kept(command.user_name)),
            ("operation_type", seen.operation_type, operation),
            (
                "amount",
                seen.amount if seen.amount is not None else seen.amount_as_sent,
                amount if amount is not None else command.amount,
            ),
            ("amount_digits", seen.amount_digits, command.amount_digits),
            ("biz_type", seen.biz_type, command.biz_type),
            ("order_id", seen.order_id, command.order_id),
        ]
    )
    if different:
        return AdjustResult(Outcome.CONFLICT, balance, conflict_field=different)
    policy = OvertradingPolicy(seen.overtrading_policy) if seen.overtrading_policy else None
    return AdjustResult(
        seen.outcome_value,
        balance,
        seen.applied_amount,
        policy,
        replayed=True,
        refused_field=seen.refused_field or "",
        refusal_message=_WALLET_REFUSALS.get(
            MovementStatus(seen.outcome), "refused when first received"
        ),
    )


async def cancel_adjustment(
    movements: GroupCommit, command: CancelCommand, trace_id: str, deadline: float
) -> CancelResult:
    """Reverse an adjustment once, or tombstone a number never received. Only
    the target's identity and account can refuse a cancel."""
    key = command.account
    intake.identify(key, command.reverse_request_unique_no, "target_request_id")
    notes = list(command.notes)
    own_number: str | None = command.request_unique_no
    if not intake.usable_number(command.request_unique_no) or (
        command.request_unique_no == command.reverse_request_unique_no
    ):
        notes.append(f"request_id {command.request_unique_no[:60]!r} unusable")
        own_number = None
    currency = intake.identifier_or_none(key.currency, validation.MAX_CURRENCY)
    user_name = intake.identifier_or_none(command.user_name, validation.MAX_USER_NAME)
    recorded = _recorded(command, notes, trace_id)
    cancel_remark = intake.free_text(
        command.cancel_remark, "tradeboss.remark", validation.MAX_REMARK, notes
    )
    amount = intake.plain_decimal_or_none(command.amount)
    movement = Movement(
        is_cancel=True,
        request_unique_no=own_number,
        currency=currency,
        user_name=user_name,
        amount=amount,
        input_notes=intake.joined(notes),
        **recorded,
        reverse_request_unique_no=command.reverse_request_unique_no,
        cancel_remark=cancel_remark,
    )
    row = await movements.apply(movement, deadline)
    balance = _balance(key, row)
    status = MovementStatus(row["status"])
    if status is MovementStatus.SEEN:
        seen = RequestRecord(**dict(row["seen"]))
        metrics.CANCELS.labels(seen.outcome).inc()
        return CancelResult(seen.outcome_value, balance, seen.applied_amount, replayed=True)
    if status in _TARGET_FIELDS:
        field = _TARGET_FIELDS[status]
        raise LedgerError(
            Outcome.CANCEL_TARGET_MISMATCH,
            f"the cancel's {field} does not match the request it names"
            if field != "target_request_id"
            else f"{command.reverse_request_unique_no!r} is not an adjustment",
            field,
        )
    target_amount = row["target_amount"]
    if (
        status is MovementStatus.REVERSED
        and target_amount is not None
        and target_amount.copy_abs() != amount
    ):
        log.warning(
            "cancel %s names %s for %r but %s was requested; reversed what was applied",
            row["record_key"],
            command.reverse_request_unique_no,
            command.amount,
            target_amount.copy_abs(),
        )
    metrics.CANCELS.labels(status).inc()
    if row["tombstone_written"]:
        metrics.TOMBSTONES.inc()
    if status is MovementStatus.REVERSED:
        metrics.money_moved(key.currency, "reversal", row["reversed_amount"])
    return CancelResult(
        Outcome[status],
        balance,
        row["reversed_amount"],
        tombstone_written=row["tombstone_written"],
    )


def _balance(key: AccountKey, row: asyncpg.Record) -> Balance | None:
    """The wallet the function locked, if there is one."""
    if row["digits"] is None:
        return None
    return Balance(key, row["balance"], row["digits"], row["user_name"] or "")
