"""Small builders for ledger.v1 requests, so tests read as the scenario they check."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from ledger_client import pb

from .conftest import Wallet, unique

OPEN = pb.OPERATION_TYPE_OPEN_POSITION
CLOSE = pb.OPERATION_TYPE_NORMAL_CLOSE
OVERTRADE = pb.OPERATION_TYPE_ABNORMAL_OVERTRADING


def adjust_request(
    wallet: Wallet,
    amount: str,
    operation_type: int = OPEN,
    request_unique_no: str | None = None,
    **fields: object,
) -> pb.AdjustRequest:
    values: dict[str, object] = {
        "account": wallet.key,
        "user_name": wallet.user_name,
        "request_unique_no": unique("exe") if request_unique_no is None else request_unique_no,
        "operation_type": operation_type,
        "amount": amount,
        "amount_digits": wallet.digits,
        "biz_type": 1,
        "order_id": 42,
        "request_time_ms": 1_764_000_000_000,
        "client_ip": "203.0.113.7",
    }
    values.update(fields)
    return pb.AdjustRequest(**values)  # type: ignore[arg-type]


def cancel_request(
    wallet: Wallet,
    reverse_request_unique_no: str,
    amount: str,
    request_unique_no: str | None = None,
    **fields: object,
) -> pb.CancelAdjustmentRequest:
    values: dict[str, object] = {
        "account": wallet.key,
        "user_name": wallet.user_name,
        "request_unique_no": unique("cxl") if request_unique_no is None else request_unique_no,
        "reverse_request_unique_no": reverse_request_unique_no,
        "amount": amount,
        "amount_digits": wallet.digits,
        "biz_type": 1,
        "cancel_remark": "timeout",
        "request_time_ms": 1_764_000_000_000,
        "client_ip": "203.0.113.7",
    }
    values.update(fields)
    return pb.CancelAdjustmentRequest(**values)  # type: ignore[arg-type]


def error_detail(error: grpc.aio.AioRpcError) -> pb.ErrorDetail:
    """The ErrorDetail packed in a ledger error status."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, f"no rich status in {error!r}"
    assert len(status.details) == 1
    detail = pb.ErrorDetail()
    assert status.details[0].Unpack(detail)
    return detail


async def balance_of(stub: object, wallet: Wallet) -> str:
    answer = await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))  # type: ignore[attr-defined]
    return str(answer.balance.amount)
