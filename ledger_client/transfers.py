"""Typed helpers for internal services: transfers and holds in one call each.

    async with open_channel("ledger:50051", ChannelSecurity(token=...)) as channel:
        stub = pb_grpc.LedgerServiceStub(channel)
        payer = account_key(7, "alice", "USD")
        done = await transfer(stub, payer, "@fees", "1.50", transfer_id="fee-42")
        if done.result != pb.TRANSFER_RESULT_APPLIED: ...

Each helper sends one request and returns the ledger's response; a result the
caller did not want (INSUFFICIENT_BALANCE, EXISTS_WITH_DIFFERENT_*) is in
`response.result` (name it with `result_name`), an error that wrote nothing
is a grpc.aio.AioRpcError (read it with `error_detail`). Ids are the caller's:
send the same id again after a timeout and the first answer comes back.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from .generated.ledger.v2 import ledger_pb2 as pb


def account_key(company_id: int, customer: str, currency: str) -> pb.AccountKey:
    return pb.AccountKey(company_id=company_id, customer=customer, currency=currency)


def new_id(prefix: str) -> str:
    """A fresh id for a transfer or hold (keep it: a retry must reuse it)."""
    return f"{prefix}-{uuid.uuid4().hex}"[:48]


def transfer_request(
    debit: pb.AccountKey,
    credit_customer: str,
    amount: str,
    *,
    transfer_id: str,
    reference: str = "",
    metadata: str = "",
) -> pb.CreateTransferRequest:
    return pb.CreateTransferRequest(
        transfer_id=transfer_id,
        debit_account=debit,
        credit_customer=credit_customer,
        amount=amount,
        reference=reference,
        metadata=metadata,
    )


async def transfer(
    stub: Any,
    debit: pb.AccountKey,
    credit_customer: str,
    amount: str,
    *,
    transfer_id: str,
    reference: str = "",
    metadata: str = "",
    call_timeout: float | None = None,
) -> pb.CreateTransferResponse:
    """Move `amount` from `debit` to credit_customer's account of the same
    company and currency."""
    request = transfer_request(
        debit,
        credit_customer,
        amount,
        transfer_id=transfer_id,
        reference=reference,
        metadata=metadata,
    )
    response: pb.CreateTransferResponse = await stub.CreateTransfer(request, timeout=call_timeout)
    return response


async def transfers(
    stub: Any, requests: list[pb.CreateTransferRequest], *, call_timeout: float | None = None
) -> list[pb.TransferAnswer]:
    """Up to 1,000 transfers in one transaction; one answer each, in order."""
    response = await stub.CreateTransfers(
        pb.CreateTransfersRequest(transfers=requests), timeout=call_timeout
    )
    return list(response.transfers)


async def hold(
    stub: Any,
    debit: pb.AccountKey,
    credit_customer: str,
    amount: str,
    *,
    hold_id: str,
    expire_time: datetime | None = None,
    reference: str = "",
    metadata: str = "",
    call_timeout: float | None = None,
) -> pb.CreateHoldResponse:
    """Reserve `amount` of `debit` for credit_customer until posted, voided
    or expired (expire_time: an aware datetime)."""
    request = pb.CreateHoldRequest(
        hold_id=hold_id,
        debit_account=debit,
        credit_customer=credit_customer,
        amount=amount,
        reference=reference,
        metadata=metadata,
    )
    if expire_time is not None:
        request.expire_time.FromDatetime(expire_time)
    response: pb.CreateHoldResponse = await stub.CreateHold(request, timeout=call_timeout)
    return response


async def post_hold(
    stub: Any,
    debit: pb.AccountKey,
    hold_id: str,
    amount: str = "",
    *,
    call_timeout: float | None = None,
) -> pb.PostHoldResponse:
    """Transfer all of the hold (amount "") or part of it; the rest is released."""
    request = pb.PostHoldRequest(debit_account=debit, hold_id=hold_id, amount=amount)
    response: pb.PostHoldResponse = await stub.PostHold(request, timeout=call_timeout)
    return response


async def void_hold(
    stub: Any, debit: pb.AccountKey, hold_id: str, *, call_timeout: float | None = None
) -> pb.VoidHoldResponse:
    request = pb.VoidHoldRequest(debit_account=debit, hold_id=hold_id)
    response: pb.VoidHoldResponse = await stub.VoidHold(request, timeout=call_timeout)
    return response
