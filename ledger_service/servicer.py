"""gRPC entry point: translates ledger.v2 messages to use-case calls and back.

No rule lives here; every decision is in the use cases it calls. The trace,
deadline, errors, logs and metrics of every call are the interceptor's
(interceptor.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, Literal

import asyncpg
import grpc
from google.protobuf import timestamp_pb2

from ledger_client import pb, pb_grpc

from . import (
    accounts,
    adjustments,
    feed,
    funding,
    journal,
    reconciliation,
    request_records,
    transfers,
    validation,
)
from .balance_reads import BalanceReads
from .errors import LedgerError
from .group_commit import GroupCommit
from .interceptor import ANSWER_MARGIN, apply_item, current_call, item_error
from .model import AccountKey, AdjustCommand, Balance, CancelCommand, FundingResult
from .money import OvertradingPolicy, format_amount
from .outcomes import Outcome
from .settings import Settings
from .shard_routing import ShardRouter

log = logging.getLogger(__name__)

# Items of one ApplyMovements call, at most.
MAX_MOVEMENTS = 1000

_POLICY_TO_PB = {
    OvertradingPolicy.DEDUCT: pb.OVERTRADING_POLICY_DEDUCT,
    OvertradingPolicy.IGNORE: pb.OVERTRADING_POLICY_IGNORE,
}
_CAUSE_TO_PB = {
    "deposit": pb.ENTRY_CAUSE_DEPOSIT,
    "withdrawal": pb.ENTRY_CAUSE_WITHDRAWAL,
    "adjustment": pb.ENTRY_CAUSE_ADJUSTMENT,
    "reversal": pb.ENTRY_CAUSE_REVERSAL,
    "transfer": pb.ENTRY_CAUSE_TRANSFER,
    "hold": pb.ENTRY_CAUSE_HOLD,
    "hold_post": pb.ENTRY_CAUSE_HOLD_POST,
    "hold_void": pb.ENTRY_CAUSE_HOLD_VOID,
    "hold_expiry": pb.ENTRY_CAUSE_HOLD_EXPIRY,
}


class LedgerServicer(pb_grpc.LedgerServiceServicer):
    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: Settings,
        journal_feed: feed.JournalFeed,
        router: ShardRouter | None = None,
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._feed = journal_feed
        self._movements = GroupCommit(
            pool, settings.batch_max_size, settings.batch_max_in_flight, router
        )
        self._reads = (
            BalanceReads(pool, settings.batch_max_size, settings.batch_max_in_flight)
            if not settings.distributed
            else None
        )

    async def OpenAccount(
        self, request: pb.OpenAccountRequest, context: grpc.aio.ServicerContext
    ) -> pb.OpenAccountResponse:
        call = current_call()
        created, balance = await accounts.open_account(
            self._pool,
            _key(request.account),
            request.digits,
            request.user_name,
            call.deadline,
            internal=request.kind == pb.ACCOUNT_KIND_INTERNAL,
            allow_negative=request.allow_negative,
        )
        return pb.OpenAccountResponse(created=created, balance=_balance(balance))

    async def Deposit(
        self, request: pb.DepositRequest, context: grpc.aio.ServicerContext
    ) -> pb.DepositResponse:
        result = await self._fund("deposit", request, context)
        return pb.DepositResponse(
            result=_result(pb.DepositResult, result.outcome, result.conflict_field),
            balance=_balance(result.balance),
            replayed=result.replayed,
        )

    async def Withdraw(
        self, request: pb.WithdrawRequest, context: grpc.aio.ServicerContext
    ) -> pb.WithdrawResponse:
        result = await self._fund("withdrawal", request, context)
        return pb.WithdrawResponse(
            result=_result(pb.WithdrawResult, result.outcome, result.conflict_field),
            balance=_balance(result.balance),
            replayed=result.replayed,
        )

    async def _fund(
        self,
        kind: Literal["deposit", "withdrawal"],
        request: pb.DepositRequest | pb.WithdrawRequest,
        context: grpc.aio.ServicerContext,
    ) -> FundingResult:
        """Deposit and Withdraw differ only in direction; their answers share fields."""
        call = current_call()
        result = await funding.fund(
            self._pool,
            kind,
            _key(request.account),
            request.amount,
            request.request_id,
            request.note,
            call.trace_id,
            call.deadline,
        )
        return result

    async def CreateTransfer(
        self, request: pb.CreateTransferRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTransferResponse:
        call = current_call()
        [answer] = await transfers.create(
            self._pool, [_transfer(request, call.trace_id)], call.deadline
        )
        if isinstance(answer, LedgerError):
            raise answer
        return _transfer_response(answer)

    async def CreateTransfers(
        self, request: pb.CreateTransfersRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateTransfersResponse:
        call = current_call()
        answers = await transfers.create(
            self._pool,
            [_transfer(item, call.trace_id) for item in request.transfers],
            call.deadline,
        )
        return pb.CreateTransfersResponse(
            transfers=[
                pb.TransferAnswer(error=item_error(answer))
                if isinstance(answer, LedgerError)
                else pb.TransferAnswer(transfer=_transfer_response(answer))
                for answer in answers
            ]
        )

    async def CreateHold(
        self, request: pb.CreateHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.CreateHoldResponse:
        call = current_call()
        command = transfers.TransferCommand(
            transfer_id=request.hold_id,
            debit=_key(request.debit_account),
            credit_customer=request.credit_customer,
            amount=request.amount,
            reference=request.reference,
            metadata=request.metadata,
            kind="hold",
            expire_time=_datetime(request.expire_time) if request.HasField("expire_time") else None,
            trace_id=call.trace_id,
        )
        [answer] = await transfers.create(self._pool, [command], call.deadline)
        if isinstance(answer, LedgerError):
            raise answer
        return pb.CreateHoldResponse(
            result=_result(pb.HoldResult, answer.outcome, answer.conflict_field),
            balance=_balance(answer.debit),
            replayed=answer.replayed,
        )

    async def PostHold(
        self, request: pb.PostHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.PostHoldResponse:
        call = current_call()
        closed = await transfers.close_hold(
            self._pool,
            _key(request.debit_account),
            request.hold_id,
            True,
            request.amount,
            call.trace_id,
            call.deadline,
        )
        return pb.PostHoldResponse(
            result=_result(pb.PostHoldResult, closed.outcome, "amount"),
            debit_balance=_balance(closed.debit),
            credit_balance=_balance(closed.credit),
            posted_amount=format_amount(closed.posted, closed.debit.digits),
            replayed=closed.replayed,
        )

    async def VoidHold(
        self, request: pb.VoidHoldRequest, context: grpc.aio.ServicerContext
    ) -> pb.VoidHoldResponse:
        call = current_call()
        closed = await transfers.close_hold(
            self._pool,
            _key(request.debit_account),
            request.hold_id,
            False,
            "",
            call.trace_id,
            call.deadline,
        )
        return pb.VoidHoldResponse(
            result=_result(pb.VoidHoldResult, closed.outcome),
            balance=_balance(closed.debit),
            replayed=closed.replayed,
        )

    async def GetBalance(
        self, request: pb.GetBalanceRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetBalanceResponse:
        call = current_call()
        key = _key(request.account)
        as_of = request.WhichOneof("as_of")
        if as_of == "as_of_time":
            balance, entry_no = await journal.balance_as_of(
                self._pool, key, call.deadline, time=_datetime(request.as_of_time)
            )
        elif as_of == "as_of_entry_no":
            balance, entry_no = await journal.balance_as_of(
                self._pool, key, call.deadline, entry_no=request.as_of_entry_no
            )
        else:
            balance, entry_no = await accounts.get_balance(
                self._pool, key, request.user_name, call.deadline, self._reads
            )
        return pb.GetBalanceResponse(balance=_balance(balance), entry_no=entry_no)

    async def Adjust(
        self, request: pb.AdjustRequest, context: grpc.aio.ServicerContext
    ) -> pb.AdjustResponse:
        call = current_call()
        command = AdjustCommand(
            account=_key(request.account),
            user_name=request.user_name,
            request_unique_no=request.request_id,
            operation_type=request.operation_type,
            amount=request.amount,
            amount_digits=request.amount_digits,
            **_tradeboss(request.tradeboss),
            input_error=(request.input_error.field, request.input_error.message)
            if request.HasField("input_error")
            else None,
            notes=tuple(request.input_notes),
        )
        result = await adjustments.adjust(
            self._movements,
            command,
            self._settings.overtrading_policy,
            call.trace_id,
            call.deadline,
        )
        return pb.AdjustResponse(
            result=_result(pb.AdjustResult, result.outcome, result.conflict_field),
            balance=_balance(result.balance) if result.balance else None,
            applied_amount=_decimal_text(
                result.applied_amount, result.balance.digits if result.balance else None
            ),
            overtrading_policy=_POLICY_TO_PB[result.overtrading_policy]
            if result.overtrading_policy
            else pb.OVERTRADING_POLICY_UNSPECIFIED,
            replayed=result.replayed,
            refused_field=result.refused_field,
            refusal_message=result.refusal_message,
        )

    async def CancelAdjustment(
        self, request: pb.CancelAdjustmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.CancelAdjustmentResponse:
        call = current_call()
        command = CancelCommand(
            account=_key(request.account),
            user_name=request.user_name,
            request_unique_no=request.request_id,
            reverse_request_unique_no=request.target_request_id,
            amount=request.amount,
            amount_digits=request.amount_digits,
            cancel_remark=request.tradeboss.remark,
            **_tradeboss(request.tradeboss),
            notes=tuple(request.input_notes),
        )
        result = await adjustments.cancel_adjustment(
            self._movements, command, call.trace_id, call.deadline
        )
        return pb.CancelAdjustmentResponse(
            result=_result(pb.CancelResult, result.outcome),
            balance=_balance(result.balance) if result.balance else None,
            reversed_amount=_decimal_text(
                result.reversed_amount, result.balance.digits if result.balance else None
            ),
            replayed=result.replayed,
        )

    async def ApplyMovements(
        self, request: pb.ApplyMovementsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ApplyMovementsResponse:
        if len(request.movements) > MAX_MOVEMENTS:
            raise LedgerError(
                Outcome.INVALID_ARGUMENT,
                f"{len(request.movements)} movements, at most {MAX_MOVEMENTS} allowed",
                "movements",
            )
        call = current_call()
        received = asyncio.get_running_loop().time()
        methods: dict[str, tuple[str, Callable[..., Awaitable[Any]]]] = {
            "adjust": ("Adjust", self.Adjust),
            "cancel": ("CancelAdjustment", self.CancelAdjustment),
            "balance": ("GetBalance", self.GetBalance),
        }

        async def one(item: pb.MovementRequest) -> pb.MovementResponse:
            deadline = call.deadline
            if item.HasField("timeout"):
                allowed = item.timeout.ToMilliseconds() / 1000 - ANSWER_MARGIN
                deadline = min(deadline, received + allowed)
            kind = item.WhichOneof("movement")
            if kind is None:
                return pb.MovementResponse(
                    error=pb.MovementError(
                        code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                        reason=Outcome.INVALID_ARGUMENT.name,
                        field="movement",
                        message="an item holds no adjust, cancel or balance",
                    )
                )
            method, behaviour = methods[kind]
            answer = await apply_item(
                method,
                getattr(item, kind),
                item.trace_id,
                deadline,
                partial(behaviour, context=context),
            )
            if isinstance(answer, pb.MovementError):
                return pb.MovementResponse(error=answer)
            return pb.MovementResponse(**{kind: answer})

        answers = await asyncio.gather(*(one(item) for item in request.movements))
        return pb.ApplyMovementsResponse(movements=answers)

    async def RebindUserName(
        self, request: pb.RebindUserNameRequest, context: grpc.aio.ServicerContext
    ) -> pb.RebindUserNameResponse:
        call = current_call()
        balance, previous = await accounts.rebind_user_name(
            self._pool,
            _key(request.account),
            request.user_name,
            request.reason,
            request.operator,
            call.trace_id,
            call.deadline,
        )
        return pb.RebindUserNameResponse(balance=_balance(balance), previous_user_name=previous)

    async def GetRequest(
        self, request: pb.GetRequestRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetRequestResponse:
        call = current_call()
        record = await request_records.get_request(
            self._pool, _key(request.account), request.request_id, call.deadline
        )
        return pb.GetRequestResponse(request=_request_record(record))

    async def ListJournalEntries(
        self, request: pb.ListJournalEntriesRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListJournalEntriesResponse:
        call = current_call()
        only = journal.EntryFilter(
            request_unique_no=request.request_id or None,
            order_id=request.order_id or None,
            start_time=_datetime(request.start_time) if request.HasField("start_time") else None,
            end_time=_datetime(request.end_time) if request.HasField("end_time") else None,
        )
        digits, entries, next_token = await journal.list_entries(
            self._pool,
            _key(request.account),
            request.page_size,
            request.page_token,
            call.deadline,
            only,
        )
        return pb.ListJournalEntriesResponse(
            entries=[_journal_entry(entry, digits) for entry in entries],
            next_page_token=next_token,
        )

    async def Reconcile(
        self, request: pb.ReconcileRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ReconcileResponse]:
        log.info("reconciliation started (company %s)", request.company_id or "all")
        async for item in reconciliation.reconcile(self._pool, request.company_id):
            if isinstance(item, reconciliation.Progress):
                yield pb.ReconcileResponse(
                    progress=pb.ReconcileProgress(
                        checks_done=item.checks_done, checks_total=item.checks_total
                    )
                )
            elif isinstance(item, reconciliation.Discrepancy):
                yield pb.ReconcileResponse(
                    discrepancy=pb.Discrepancy(
                        check=item.check,
                        account=_key_pb(item.account),
                        request_id=item.request_unique_no,
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
        as_of = _datetime(request.as_of) if request.HasField("as_of") else None
        found = await reconciliation.exposure(self._pool, request.company_id, as_of)
        return pb.GetExposureResponse(
            exposures=[
                pb.CurrencyExposure(
                    company_id=item.company_id,
                    currency=item.currency,
                    wallets=item.wallets,
                    customers=format_amount(item.customers, item.digits),
                    internal=format_amount(item.internal, item.digits),
                    clearing=format_amount(item.clearing, item.digits),
                    funding=format_amount(item.funding, item.digits),
                )
                for item in found
            ]
        )

    async def ExportJournal(
        self, request: pb.ExportJournalRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.ExportJournalResponse]:
        if not (request.HasField("start_time") and request.HasField("end_time")):
            raise LedgerError(Outcome.INVALID_ARGUMENT, "start_time and end_time are required")
        from_time = _datetime(request.start_time)
        to_time = _datetime(request.end_time)
        batch: list[pb.ExportedEntry] = []
        total = 0
        async for entry in reconciliation.export_journal(
            self._pool, from_time, to_time, request.company_id
        ):
            if isinstance(entry, int):
                total = entry  # sent with the first batch
                continue
            batch.append(_exported_entry(entry))
            if len(batch) == _EXPORT_BATCH:
                yield pb.ExportJournalResponse(entries=batch, total_entries=total)
                batch, total = [], 0
        if batch or total:
            yield pb.ExportJournalResponse(entries=batch, total_entries=total)

    async def WatchJournal(
        self, request: pb.WatchJournalRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WatchJournalResponse]:
        start = request.WhichOneof("start")
        if start == "after":
            after: feed.Position | None = _position(request.after)
        else:
            after = None if start == "from_now" else feed.START
        async for batch in self._feed.watch(request.company_id, after):
            yield pb.WatchJournalResponse(
                entries=[
                    pb.WatchedEntry(
                        account=_key_pb(item.entry.account),
                        entry=_journal_entry(item.entry.entry, item.entry.digits),
                        position=_position_pb(item.position),
                    )
                    for item in batch.entries
                ],
                position=_position_pb(batch.reached),
            )


_EXPORT_BATCH = 500


def _position(position: pb.JournalPosition) -> feed.Position:
    return feed.Position(position.transaction_id, position.sequence)


def _position_pb(position: feed.Position) -> pb.JournalPosition:
    return pb.JournalPosition(transaction_id=position.xact_id, sequence=position.sequence)


def _exported_entry(exported: journal.AccountEntry) -> pb.ExportedEntry:
    return pb.ExportedEntry(
        account=_key_pb(exported.account),
        entry=_journal_entry(exported.entry, exported.digits),
    )


def _result(enum: Any, outcome: Outcome, conflict_field: str = "") -> Any:
    """The operation's result value of the same name: ADJUST_RESULT_APPLIED for
    APPLIED, ..._EXISTS_WITH_DIFFERENT_AMOUNT for a CONFLICT on amount."""
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    if outcome == Outcome.CONFLICT:
        return int(enum.Value(f"{prefix}EXISTS_WITH_DIFFERENT_{conflict_field.upper()}"))
    return int(enum.Value(prefix + outcome.name))


# Which result enum a request record's result belongs to, by its kind.
_RESULT_OF_KIND = {
    "adjustment": ("adjust_result", pb.AdjustResult),
    "tombstone": ("adjust_result", pb.AdjustResult),
    "cancel": ("cancel_result", pb.CancelResult),
    "deposit": ("deposit_result", pb.DepositResult),
    "withdrawal": ("withdraw_result", pb.WithdrawResult),
}


def _tradeboss(fields: pb.TradeBossFields) -> dict[str, Any]:
    """The TradeBoss fields both commands carry, in the domain's names."""
    return {
        "biz_type": fields.biz_type,
        "order_id": fields.order_id,
        "request_time_ms": fields.request_time_ms,
        "client_ip": fields.ip,
        "metadata": fields.metadata,
        "header_timestamp_ms": fields.header_timestamp_ms,
    }


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
        held=format_amount(balance.held, balance.digits),
        available=format_amount(balance.available, balance.digits),
    )


def _transfer(request: pb.CreateTransferRequest, trace_id: str) -> transfers.TransferCommand:
    return transfers.TransferCommand(
        transfer_id=request.transfer_id,
        debit=_key(request.debit_account),
        credit_customer=request.credit_customer,
        amount=request.amount,
        reference=request.reference,
        metadata=request.metadata,
        trace_id=trace_id,
    )


def _transfer_response(answer: transfers.TransferResult) -> pb.CreateTransferResponse:
    return pb.CreateTransferResponse(
        result=_result(pb.TransferResult, answer.outcome, answer.conflict_field),
        debit_balance=_balance(answer.debit),
        credit_balance=_balance(answer.credit),
        replayed=answer.replayed,
    )


def _decimal_text(value: Decimal | None, digits: int | None) -> str:
    """At the scale given when it is a valid one (a refused request may carry any)."""
    if value is None:
        return ""
    if digits is None or not 0 <= digits <= validation.MAX_DIGITS:
        return f"{value:f}"
    return format_amount(value, digits)


def _datetime(stamp: timestamp_pb2.Timestamp) -> datetime:
    return stamp.ToDatetime(tzinfo=UTC)


def _timestamp(value: object) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(value)  # type: ignore[arg-type]
    return stamp


def _request_record(record: request_records.RequestRecord) -> pb.RequestRecord:
    digits = record.amount_digits
    result_field, result_enum = _RESULT_OF_KIND[record.kind]
    return pb.RequestRecord(
        **{result_field: _result(result_enum, record.outcome_value)},
        account=pb.AccountKey(
            company_id=record.company_id, customer=record.customer, currency=record.currency
        ),
        request_id=record.request_unique_no,
        kind=pb.RequestKind.Value("REQUEST_KIND_" + record.kind.upper()),
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
        target_request_id=record.reverse_request_unique_no or "",
        reversed_by=record.reversed_by or "",
        user_name=record.user_name,
        trace_id=record.trace_id,
        create_time=_timestamp(record.created_at),
        reverse_time=_timestamp(record.reversed_at),
        refused_field=record.refused_field or "",
        amount_as_sent=record.amount_as_sent or "",
        input_notes=record.input_notes or "",
    )


def _journal_entry(entry: journal.Entry, digits: int) -> pb.JournalEntry:
    return pb.JournalEntry(
        entry_no=entry.entry_no,
        amount=format_amount(entry.amount, digits),
        balance_after=format_amount(entry.balance_after, digits),
        cause=_CAUSE_TO_PB[entry.cause],
        request_id=entry.request_unique_no,
        operation_type=pb.OperationType.Value("OPERATION_TYPE_" + entry.operation_type)
        if entry.operation_type
        else pb.OPERATION_TYPE_UNSPECIFIED,
        overtrading_policy=_POLICY_TO_PB[OvertradingPolicy(entry.overtrading_policy)]
        if entry.overtrading_policy
        else pb.OVERTRADING_POLICY_UNSPECIFIED,
        trace_id=entry.trace_id,
        create_time=_timestamp(entry.created_at),
        counterparty=entry.counterparty or "",
        counterparty_customer=entry.counterparty_customer or "",
        held_change=format_amount(entry.held_change, digits),
        held_after=format_amount(entry.held_after, digits),
    )
