"""gRPC entry point: translates ledger.v1 messages to use-case calls and back.

No rule lives here; every decision is in the use cases it calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC
from decimal import Decimal
from typing import Any, TypeVar

import asyncpg
import grpc
from google.protobuf import any_pb2, timestamp_pb2
from google.rpc import status_pb2
from grpc_status import rpc_status

from ledger_client import pb, pb_grpc

from . import (
    accounts,
    adjustments,
    funding,
    journal,
    metrics,
    reconciliation,
    request_records,
    validation,
)
from .errors import LedgerError
from .model import AccountKey, AdjustCommand, Balance, CancelCommand, FundingResult
from .money import OvertradingPolicy, format_amount
from .outcomes import Outcome
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_TRACE = 128
# Time kept back from the caller's deadline to send the answer.
_ANSWER_MARGIN = 0.05

# The one table from error outcomes to gRPC status codes.
STATUS_OF_OUTCOME: dict[int, grpc.StatusCode] = {
    pb.OUTCOME_INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    pb.OUTCOME_INVALID_AMOUNT: grpc.StatusCode.INVALID_ARGUMENT,
    pb.OUTCOME_AMOUNT_SIGN_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    pb.OUTCOME_TOO_MANY_DIGITS: grpc.StatusCode.INVALID_ARGUMENT,
    pb.OUTCOME_ACCOUNT_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    pb.OUTCOME_REQUEST_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    pb.OUTCOME_ACCOUNT_SCALE_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    pb.OUTCOME_USER_NAME_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    pb.OUTCOME_CANCEL_TARGET_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    pb.OUTCOME_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    pb.OUTCOME_DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    pb.OUTCOME_ABORTED: grpc.StatusCode.ABORTED,
    pb.OUTCOME_INTERNAL: grpc.StatusCode.INTERNAL,
}

_POLICY_TO_PB = {
    OvertradingPolicy.DEDUCT: pb.OVERTRADING_POLICY_DEDUCT,
    OvertradingPolicy.IGNORE: pb.OVERTRADING_POLICY_IGNORE,
}
_CAUSE_TO_PB = {
    "deposit": pb.ENTRY_CAUSE_DEPOSIT,
    "withdrawal": pb.ENTRY_CAUSE_WITHDRAWAL,
    "adjustment": pb.ENTRY_CAUSE_ADJUSTMENT,
    "reversal": pb.ENTRY_CAUSE_REVERSAL,
}


def error_status(error: LedgerError) -> grpc.Status:
    """A gRPC status whose rich details carry the ErrorDetail of the outcome."""
    detail = any_pb2.Any()
    detail.Pack(
        pb.ErrorDetail(outcome=_outcome_pb(error.outcome), field=error.field, message=error.message)
    )
    code = STATUS_OF_OUTCOME.get(error.outcome, grpc.StatusCode.INTERNAL)
    status = status_pb2.Status(code=code.value[0], message=str(error), details=[detail])
    return rpc_status.to_status(status)


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self._pool = pool
        self._settings = settings

    async def _answer(
        self,
        context: grpc.aio.ServicerContext,
        method: str,
        call: Callable[[str, float], Awaitable[T]],
        *,
        company_id: int = 0,
        reference: str = "",
    ) -> T:
        """Run one use case with the caller's trace and deadline; count it and
        log one line."""
        started = time.perf_counter()
        trace_id = ""
        outcome = "OK"
        metrics.IN_FLIGHT.labels(method).inc()
        try:
            trace_id = _trace_of(context)
            deadline = self._deadline(context)
            result = await call(trace_id, deadline)
            if getattr(result, "outcome", 0):
                outcome = pb.Outcome.Name(result.outcome)  # type: ignore[attr-defined]
            return result
        except LedgerError as error:
            outcome = error.outcome_name
            status = error_status(error)
            await context.abort(status.code, status.details, status.trailing_metadata)
            raise  # abort() raises; this keeps type checkers content
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            raise
        except Exception:
            if context.done():
                raise
            outcome = "OUTCOME_INTERNAL"
            log.exception("internal error in %s (trace %s)", method, trace_id)
            status = error_status(
                LedgerError(Outcome.INTERNAL, "internal error; see the ledger log", "")
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
            raise
        finally:
            elapsed = time.perf_counter() - started
            outcome = outcome.removeprefix("OUTCOME_")
            metrics.IN_FLIGHT.labels(method).dec()
            metrics.LATENCY.labels(method).observe(elapsed)
            metrics.REQUESTS.labels(method, outcome).inc()
            log.info(
                "%s %s",
                method,
                outcome,
                extra={
                    "fields": {
                        "method": method,
                        "trace": trace_id,
                        "company_id": company_id,
                        "reference": reference,
                        "outcome": outcome,
                        "duration_ms": round(elapsed * 1000, 2),
                    }
                },
            )

    def _deadline(self, context: grpc.aio.ServicerContext) -> float:
        allowed = self._settings.default_deadline
        remaining = context.time_remaining()
        if remaining is not None:
            allowed = min(allowed, remaining - _ANSWER_MARGIN)
        return asyncio.get_running_loop().time() + max(0.0, allowed)

    async def OpenAccount(
        self, request: pb.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenAccountResponse:
        async def call(trace_id: str, deadline: float) -> pb.OpenAccountResponse:
            created, balance = await accounts.open_account(
                self._pool, _key(request.account), request.digits, request.user_name, deadline
            )
            return pb.OpenAccountResponse(created=created, balance=_balance(balance))

        return await self._answer(
            context,
            "OpenAccount",
            call,
            company_id=request.account.company_id,
            reference=request.account.customer,
        )

    async def Deposit(
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext
    ) -> pb.DepositResponse:
        result = await self._fund("deposit", request, context)
        return pb.DepositResponse(**_funding_answer(result))

    async def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.aio.ServicerContext
    ) -> pb.WithdrawResponse:
        result = await self._fund("withdrawal", request, context)
        return pb.WithdrawResponse(**_funding_answer(result))

    async def _fund(
        self,
        kind: str,
        request: pb.DepositRequest | pb.WithdrawRequest,
        context: grpc.aio.ServicerContext,
    ) -> FundingResult:
        """Deposit and Withdraw differ only in direction; their answers share fields."""
        use_case = funding.deposit if kind == "deposit" else funding.withdraw

        async def call(trace_id: str, deadline: float) -> FundingResult:
            result = await use_case(
                self._pool,
                _key(request.account),
                request.amount,
                request.idempotency_key,
                request.note,
                trace_id,
                deadline,
            )
            if result.outcome == pb.OUTCOME_APPLIED and not result.replayed:
                metrics.money_moved(request.account.currency, kind, result.amount)
            return result

        return await self._answer(
            context,
            "Deposit" if kind == "deposit" else "Withdraw",
            call,
            company_id=request.account.company_id,
            reference=request.idempotency_key,
        )

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceResponse:
        async def call(trace_id: str, deadline: float) -> pb.GetBalanceResponse:
            balance = await accounts.get_balance(
                self._pool, _key(request.account), request.user_name, deadline
            )
            return pb.GetBalanceResponse(balance=_balance(balance))

        return await self._answer(
            context,
            "GetBalance",
            call,
            company_id=request.account.company_id,
            reference=request.account.customer,
        )

    async def Adjust(
        self, request: pb.AdjustRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdjustResponse:
        async def call(trace_id: str, deadline: float) -> pb.AdjustResponse:
            command = AdjustCommand(
                account=_key(request.account),
                user_name=request.user_name,
                request_unique_no=request.request_unique_no,
                operation_type=request.operation_type,
                amount=request.amount,
                amount_digits=request.amount_digits,
                biz_type=request.biz_type,
                order_id=request.order_id,
                request_time_ms=request.request_time_ms,
                client_ip=request.client_ip,
                metadata=request.metadata,
                input_error=(request.input_error.field, request.input_error.message)
                if request.HasField("input_error")
                else None,
                header_timestamp_ms=request.header_timestamp_ms,
                notes=tuple(request.notes),
            )
            result = await adjustments.adjust(
                self._pool, command, self._settings.overtrading_policy, trace_id, deadline
            )
            if result.outcome == pb.OUTCOME_APPLIED and not result.replayed:
                operation = pb.OperationType.Name(request.operation_type)
                metrics.money_moved(
                    request.account.currency,
                    operation.removeprefix("OPERATION_TYPE_"),
                    result.applied_amount,
                )
            if result.refused_field and not result.replayed:
                metrics.REFUSALS_RECORDED.labels(result.outcome.name, result.refused_field).inc()
            return pb.AdjustResponse(
                outcome=_outcome_pb(result.outcome),
                balance=_balance(result.balance) if result.balance else None,
                applied_amount=_decimal_text(
                    result.applied_amount, result.balance.digits if result.balance else None
                ),
                overtrading_policy=_POLICY_TO_PB[result.overtrading_policy]
                if result.overtrading_policy
                else pb.OVERTRADING_POLICY_UNSPECIFIED,
                replayed=result.replayed,
                conflict_field=result.conflict_field,
                refused_field=result.refused_field,
                refusal_message=result.refusal_message,
            )

        return await self._answer(
            context,
            "Adjust",
            call,
            company_id=request.account.company_id,
            reference=request.request_unique_no,
        )

    async def CancelAdjustment(
        self, request: pb.CancelAdjustmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelAdjustmentResponse:
        async def call(trace_id: str, deadline: float) -> pb.CancelAdjustmentResponse:
            command = CancelCommand(
                account=_key(request.account),
                user_name=request.user_name,
                request_unique_no=request.request_unique_no,
                reverse_request_unique_no=request.reverse_request_unique_no,
                amount=request.amount,
                amount_digits=request.amount_digits,
                cancel_remark=request.cancel_remark,
                biz_type=request.biz_type,
                order_id=request.order_id,
                request_time_ms=request.request_time_ms,
                client_ip=request.client_ip,
                metadata=request.metadata,
                header_timestamp_ms=request.header_timestamp_ms,
                notes=tuple(request.notes),
            )
            result = await adjustments.cancel_adjustment(self._pool, command, trace_id, deadline)
            metrics.CANCELS.labels(result.outcome.name).inc()
            if result.tombstone_written:
                metrics.TOMBSTONES.inc()
            if result.outcome == pb.OUTCOME_REVERSED and not result.replayed:
                metrics.money_moved(request.account.currency, "reversal", result.reversed_amount)
            return pb.CancelAdjustmentResponse(
                outcome=_outcome_pb(result.outcome),
                balance=_balance(result.balance) if result.balance else None,
                reversed_amount=_decimal_text(
                    result.reversed_amount, result.balance.digits if result.balance else None
                ),
                replayed=result.replayed,
                conflict_field=result.conflict_field,
            )

        return await self._answer(
            context,
            "CancelAdjustment",
            call,
            company_id=request.account.company_id,
            reference=request.request_unique_no,
        )

    async def RebindUserName(
        self, request: pb.RebindUserNameRequest, context: grpc.aio.ServicerContext
    ) -> pb.RebindUserNameResponse:
        async def call(trace_id: str, deadline: float) -> pb.RebindUserNameResponse:
            balance, previous = await accounts.rebind_user_name(
                self._pool,
                _key(request.account),
                request.user_name,
                request.reason,
                request.operator,
                trace_id,
                deadline,
            )
            return pb.RebindUserNameResponse(balance=_balance(balance), previous_user_name=previous)

        return await self._answer(
            context,
            "RebindUserName",
            call,
            company_id=request.account.company_id,
            reference=request.account.customer,
        )

    async def GetRequest(
        self, request: pb.GetRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRequestResponse:
        async def call(trace_id: str, deadline: float) -> pb.GetRequestResponse:
            record = await request_records.get_request(
                self._pool, _key(request.account), request.request_unique_no, deadline
            )
            return pb.GetRequestResponse(request=_request_record(record))

        return await self._answer(
            context,
            "GetRequest",
            call,
            company_id=request.account.company_id,
            reference=request.request_unique_no,
        )

    async def ListJournalEntries(
        self, request: pb.ListJournalEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJournalEntriesResponse:
        async def call(trace_id: str, deadline: float) -> pb.ListJournalEntriesResponse:
            digits, entries, next_token = await journal.list_entries(
                self._pool, _key(request.account), request.page_size, request.page_token, deadline
            )
            return pb.ListJournalEntriesResponse(
                entries=[_journal_entry(entry, digits) for entry in entries],
                next_page_token=next_token,
            )

        return await self._answer(
            context,
            "ListJournalEntries",
            call,
            company_id=request.account.company_id,
            reference=request.account.customer,
        )

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReconcileResponse]:
        log.info("reconciliation started (company %s)", request.company_id or "all")
        async with _streaming_errors(context):
            async for item in reconciliation.reconcile(self._pool, request.company_id):
                if isinstance(item, reconciliation.Discrepancy):
                    yield pb.ReconcileResponse(
                        discrepancy=pb.Discrepancy(
                            check=item.check,
                            account=_key_pb(item.account),
                            request_unique_no=item.request_unique_no,
                            entry_no=item.entry_no,
                            detail=item.detail,
                        )
                    )
                else:
                    log.info("reconciliation done: %s", item)
                    yield pb.ReconcileResponse(
                        summary=pb.ReconcileSummary(
                            accounts_checked=item.accounts,
                            entries_checked=item.entries,
                            requests_checked=item.requests,
                            discrepancies=item.discrepancies,
                        )
                    )

    async def GetExposure(
        self, request: pb.GetExposureRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetExposureResponse:
        async def call(trace_id: str, deadline: float) -> pb.GetExposureResponse:
            as_of = request.as_of.ToDatetime(tzinfo=UTC) if request.HasField("as_of") else None
            found = await reconciliation.exposure(self._pool, request.company_id, as_of)
            return pb.GetExposureResponse(
                exposures=[
                    pb.CurrencyExposure(
                        company_id=item.company_id,
                        currency=item.currency,
                        wallets=item.wallets,
                        customers=format_amount(item.customers, item.digits),
                        clearing=format_amount(item.clearing, item.digits),
                        funding=format_amount(item.funding, item.digits),
                    )
                    for item in found
                ]
            )

        return await self._answer(context, "GetExposure", call, company_id=request.company_id)

    async def ExportJournal(
        self, request: pb.ExportJournalRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportJournalResponse]:
        if not (request.HasField("from_time") and request.HasField("to_time")):
            status = error_status(
                LedgerError(Outcome.INVALID_ARGUMENT, "from_time and to_time are required")
            )
            await context.abort(status.code, status.details, status.trailing_metadata)
        from_time = request.from_time.ToDatetime(tzinfo=UTC)
        to_time = request.to_time.ToDatetime(tzinfo=UTC)
        batch: list[pb.ExportedEntry] = []
        async with _streaming_errors(context):
            async for entry in reconciliation.export_journal(
                self._pool, from_time, to_time, request.company_id
            ):
                batch.append(_exported_entry(entry))
                if len(batch) == _EXPORT_BATCH:
                    yield pb.ExportJournalResponse(entries=batch)
                    batch = []
            if batch:
                yield pb.ExportJournalResponse(entries=batch)


_EXPORT_BATCH = 500


@contextlib.asynccontextmanager
async def _streaming_errors(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """Streams run outside run_transaction; map a lost database the same way."""
    try:
        yield
    except (OSError, asyncpg.exceptions.PostgresConnectionError) as error:
        log.warning("stream aborted: %r", error)
        status = error_status(LedgerError(Outcome.UNAVAILABLE, "the database is unavailable"))
        await context.abort(status.code, status.details, status.trailing_metadata)


def _exported_entry(entry: reconciliation.ExportedEntry) -> pb.ExportedEntry:
    return pb.ExportedEntry(
        account=_key_pb(entry.account),
        entry=_journal_entry(entry, entry.digits),
    )


def _funding_answer(result: FundingResult) -> dict[str, Any]:
    return {
        "outcome": result.outcome,
        "balance": _balance(result.balance),
        "replayed": result.replayed,
        "conflict_field": result.conflict_field,
    }


def _trace_of(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "trace":
            trace = value if isinstance(value, str) else value.decode("utf-8", "replace")
            return validation.text(trace, "trace", MAX_TRACE, required=False)
    return ""


def _outcome_pb(outcome: Outcome) -> pb.Outcome.ValueType:
    """The domain's outcomes carry the proto's numbers (tests/test_money.py checks)."""
    return pb.Outcome.ValueType(outcome.value)


def _key(account: pb.AccountKey) -> AccountKey:
    return AccountKey(account.company_id, account.customer, account.currency)


def _key_pb(key: AccountKey) -> pb.AccountKey:
    return pb.AccountKey(company_id=key.company_id, customer=key.customer, currency=key.currency)


def _balance(balance: Balance) -> pb.Balance:
    return pb.Balance(
        account=_key_pb(balance.account),
        amount=format_amount(balance.amount, balance.digits),
        digits=balance.digits,
        user_name=balance.user_name,
    )


def _decimal_text(value: Decimal | None, digits: int | None) -> str:
    """At the scale given when it is a valid one (a refused request may carry any)."""
    if value is None:
        return ""
    if digits is None or not 0 <= digits <= validation.MAX_DIGITS:
        return f"{value:f}"
    return format_amount(value, digits)


def _timestamp(value: object) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


def _request_record(record: request_records.RequestRecord) -> pb.RequestRecord:
    digits = record.amount_digits
    return pb.RequestRecord(
        account=pb.AccountKey(
            company_id=record.company_id, customer=record.customer, currency=record.currency
        ),
        request_unique_no=record.request_unique_no,
        kind=pb.RequestKind.Value("REQUEST_KIND_" + record.kind.upper()),
        outcome=_outcome_pb(record.outcome_value),
        operation_type=pb.OperationType.Value("OPERATION_TYPE_" + record.operation_type)
        if record.operation_type
        else pb.OPERATION_TYPE_UNSPECIFIED,
        amount=_decimal_text(record.amount, digits),
        amount_digits=digits or 0,
        applied_amount=_decimal_text(record.applied_amount, digits),
        balance_after=_decimal_text(record.balance_after, digits),
        overtrading_policy=_POLICY_TO_PB[OvertradingPolicy(record.overtrading_policy)]
        if record.overtrading_policy
        else pb.OVERTRADING_POLICY_UNSPECIFIED,
        reverse_request_unique_no=record.reverse_request_unique_no or "",
        reversed_by=record.reversed_by or "",
        user_name=record.user_name,
        trace_id=record.trace_id,
        created_at=_timestamp(record.created_at),
        reversed_at=_timestamp(record.reversed_at),
        refused_field=record.refused_field or "",
        amount_as_sent=record.amount_as_sent or "",
        input_notes=record.input_notes or "",
    )


def _journal_entry(
    entry: journal.Entry | reconciliation.ExportedEntry, digits: int
) -> pb.JournalEntry:
    return pb.JournalEntry(
        entry_no=entry.entry_no,
        amount=format_amount(entry.amount, digits),
        balance_after=format_amount(entry.balance_after, digits),
        cause=_CAUSE_TO_PB[entry.cause],
        request_unique_no=entry.request_unique_no,
        operation_type=pb.OperationType.Value("OPERATION_TYPE_" + entry.operation_type)
        if entry.operation_type
        else pb.OPERATION_TYPE_UNSPECIFIED,
        overtrading_policy=_POLICY_TO_PB[OvertradingPolicy(entry.overtrading_policy)]
        if entry.overtrading_policy
        else pb.OVERTRADING_POLICY_UNSPECIFIED,
        trace_id=entry.trace_id,
        created_at=_timestamp(entry.created_at),
        counterparty=entry.counterparty,
    )
