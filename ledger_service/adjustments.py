"""TradeBoss's execute and cancel: where trading moves money.

Each use case is one transaction that a reader can follow top to bottom:
lock the wallet, look up the request number, decide, post the journal entry,
record the request, commit.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from decimal import Decimal

import asyncpg

from protos.ledger.v1 import ledger_pb2 as pb

from . import accounts, journal, money, request_records, validation
from .database import run_transaction
from .errors import LedgerError
from .model import AdjustCommand, AdjustResult, Balance, CancelCommand, CancelResult
from .money import OvertradingPolicy
from .request_records import RequestRecord, first_difference, outcome_name

log = logging.getLogger(__name__)


def _validate_common(
    command: AdjustCommand | CancelCommand,
) -> None:
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
    key = command.account

    async def transaction(connection: asyncpg.Connection) -> AdjustResult:
        async with connection.transaction():
            account = await accounts.lock(connection, key)
            accounts.check_scale(account, command.amount_digits)
            account = await accounts.check_user_name(connection, account, command.user_name)

            # Idempotency: a number already recorded gets its first answer again.
            seen = await request_records.find(connection, key, command.request_unique_no)
            if seen is not None:
                return _repeat_of_adjustment(seen, command, operation, amount, account)

            delta, applied_policy = money.adjustment_delta(operation_type, amount, policy)
            record = RequestRecord(
                company_id=key.company_id,
                customer=key.customer,
                request_unique_no=command.request_unique_no,
                kind="adjustment",
                currency=key.currency,
                outcome="APPLIED",
                user_name=command.user_name,
                operation_type=operation,
                amount=amount,
                amount_digits=command.amount_digits,
                biz_type=command.biz_type,
                order_id=command.order_id,
                request_time_ms=command.request_time_ms,
                client_ip=command.client_ip,
                metadata=command.metadata,
                overtrading_policy=applied_policy.value if applied_policy else None,
                trace_id=trace_id,
            )

            # No overdraft: a debit that would go below zero is refused and
            # only the refusal is written.
            if account.balance + delta < 0 and not money.may_overdraw(operation_type):
                refusal = _replace(
                    record, outcome="INSUFFICIENT_BALANCE", balance_after=account.balance
                )
                await request_records.insert(connection, refusal)
                return AdjustResult(pb.OUTCOME_INSUFFICIENT_BALANCE, account.as_balance())

            balance_after = await journal.post_entry(
                connection,
                key,
                delta,
                cause="adjustment",
                request_unique_no=command.request_unique_no,
                trace_id=trace_id,
                operation_type=operation,
                overtrading_policy=record.overtrading_policy,
            )
            await request_records.insert(
                connection, _replace(record, applied_amount=delta, balance_after=balance_after)
            )
            return AdjustResult(
                pb.OUTCOME_APPLIED, account.as_balance(balance_after), delta, applied_policy
            )

    return await run_transaction(pool, transaction, deadline)


def _repeat_of_adjustment(
    seen: RequestRecord,
    command: AdjustCommand,
    operation: str,
    amount: Decimal,
    account: accounts.AccountRow,
) -> AdjustResult:
    if seen.kind == "tombstone":
        # A cancel already gave this number up: TradeBoss considers the trade
        # cancelled, so money must never move for it.
        log.warning(
            "execute %s arrived after its cancel %s; refused",
            command.request_unique_no,
            seen.reverse_request_unique_no,
        )
        return AdjustResult(pb.OUTCOME_ALREADY_CANCELLED, account.as_balance())
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
        return AdjustResult(pb.OUTCOME_CONFLICT, account.as_balance(), conflict_field=different)
    policy = OvertradingPolicy(seen.overtrading_policy) if seen.overtrading_policy else None
    return AdjustResult(
        seen.outcome_value, account.as_balance(), seen.applied_amount, policy, replayed=True
    )


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

    async def transaction(connection: asyncpg.Connection) -> CancelResult:
        async with connection.transaction():
            # The same row lock as adjust(): an execute and its cancel on one
            # wallet never interleave.
            account = await accounts.lock(connection, key)
            accounts.check_scale(account, command.amount_digits)
            account = await accounts.check_user_name(connection, account, command.user_name)

            # Idempotency of the cancel itself.
            seen = await request_records.find(connection, key, command.request_unique_no)
            if seen is not None:
                return _repeat_of_cancel(seen, command, amount, account)

            record = RequestRecord(
                company_id=key.company_id,
                customer=key.customer,
                request_unique_no=command.request_unique_no,
                kind="cancel",
                currency=key.currency,
                outcome="",
                user_name=command.user_name,
                amount=amount,
                amount_digits=command.amount_digits,
                biz_type=command.biz_type,
                order_id=command.order_id,
                request_time_ms=command.request_time_ms,
                client_ip=command.client_ip,
                metadata=command.metadata,
                note=command.cancel_remark,
                reverse_request_unique_no=command.reverse_request_unique_no,
                trace_id=trace_id,
            )
            target = await request_records.find(
                connection, key, command.reverse_request_unique_no, lock=True
            )

            if target is None:
                # Never received: leave a tombstone so that the execute, if it
                # arrives late, is refused. Same primary key as the execute's
                # record, so the two cannot both be written.
                tombstone = _replace(
                    record,
                    request_unique_no=command.reverse_request_unique_no,
                    kind="tombstone",
                    outcome="ALREADY_CANCELLED",
                    note=None,
                    reverse_request_unique_no=command.request_unique_no,
                )
                await request_records.insert(connection, tombstone)
                result = await _record_cancel(
                    connection, record, pb.OUTCOME_NEVER_RECEIVED, account.as_balance()
                )
                return replace(result, tombstone_written=True)

            _check_target(target, command)
            if target.kind == "tombstone":
                # Another cancel tombstoned it already; it is still never received.
                return await _record_cancel(
                    connection, record, pb.OUTCOME_NEVER_RECEIVED, account.as_balance()
                )
            if target.outcome != "APPLIED":
                return await _record_cancel(
                    connection, record, pb.OUTCOME_NOT_APPLIED, account.as_balance()
                )
            if target.reversed_by is not None:
                return await _record_cancel(
                    connection, record, pb.OUTCOME_ALREADY_REVERSED, account.as_balance()
                )

            if target.amount is not None and abs(target.amount) != amount:
                log.warning(
                    "cancel %s names %s for %s but %s was requested; reversing what was applied",
                    command.request_unique_no,
                    target.request_unique_no,
                    amount,
                    abs(target.amount),
                )
            # Reverse exactly what was applied, once: the conditional update
            # refuses a second reversal even if the row lock were bypassed.
            reversal = -target.applied_amount
            if not await request_records.mark_reversed(
                connection, key, target.request_unique_no, command.request_unique_no
            ):
                raise RuntimeError(f"{target.request_unique_no} could not be marked reversed")
            balance_after = await journal.post_entry(
                connection,
                key,
                reversal,
                cause="reversal",
                request_unique_no=command.request_unique_no,
                trace_id=trace_id,
                operation_type=target.operation_type,
                overtrading_policy=target.overtrading_policy,
            )
            return await _record_cancel(
                connection,
                _replace(record, applied_amount=reversal, balance_after=balance_after),
                pb.OUTCOME_REVERSED,
                account.as_balance(balance_after),
            )

    return await run_transaction(pool, transaction, deadline)


def _check_target(target: RequestRecord, command: CancelCommand) -> None:
    """A cancel must name an adjustment (or tombstone) of its own wallet and userName."""
    if target.kind not in ("adjustment", "tombstone"):
        raise LedgerError(
            pb.OUTCOME_CANCEL_TARGET_MISMATCH,
            f"{target.request_unique_no!r} is a {target.kind}, not an adjustment",
            "reverse_request_unique_no",
        )
    different = first_difference(
        [
            ("currency", target.currency, command.account.currency),
            ("user_name", target.user_name, command.user_name),
        ]
    )
    if different:
        raise LedgerError(
            pb.OUTCOME_CANCEL_TARGET_MISMATCH,
            f"the cancel's {different} differs from the request it names",
            different,
        )


async def _record_cancel(
    connection: asyncpg.Connection,
    record: RequestRecord,
    outcome: pb.Outcome.ValueType,
    balance: Balance,
) -> CancelResult:
    await request_records.insert(connection, _replace(record, outcome=outcome_name(outcome)))
    return CancelResult(outcome, balance, record.applied_amount)


def _repeat_of_cancel(
    seen: RequestRecord, command: CancelCommand, amount: Decimal, account: accounts.AccountRow
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
        return CancelResult(pb.OUTCOME_CONFLICT, account.as_balance(), conflict_field=different)
    return CancelResult(
        seen.outcome_value, account.as_balance(), seen.applied_amount, replayed=True
    )


def _replace(record: RequestRecord, **changes: object) -> RequestRecord:
    return replace(record, **changes)  # type: ignore[arg-type]
