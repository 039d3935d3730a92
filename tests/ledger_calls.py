"""Small builders for ledger.v2 requests, so tests read as the scenario they check."""

from __future__ import annotations

from typing import Any

import grpc

from ledger_client import ErrorDetail, pb, result_name
from ledger_client import error_detail as client_error_detail

from .conftest import Wallet, unique

OPEN = pb.OPERATION_TYPE_OPEN_POSITION
CLOSE = pb.OPERATION_TYPE_NORMAL_CLOSE
OVERTRADE = pb.OPERATION_TYPE_ABNORMAL_OVERTRADING


# Fields that travel in the nested TradeBossFields message.
_TRADEBOSS = {
    "biz_type": "biz_type",
    "order_id": "order_id",
    "request_time_ms": "request_time_ms",
    "client_ip": "ip",
    "ip": "ip",
    "cancel_remark": "remark",
    "metadata": "metadata",
    "header_timestamp_ms": "header_timestamp_ms",
}


def _nest(values: dict[str, object]) -> dict[str, object]:
    """The builders' flat fields, with TradeBoss's moved into `tradeboss`."""
    tradeboss = {_TRADEBOSS[name]: values.pop(name) for name in list(values) if name in _TRADEBOSS}
    if "notes" in values:
        values["input_notes"] = values.pop("notes")
    return {**values, "tradeboss": pb.TradeBossFields(**tradeboss)}  # type: ignore[arg-type]


def adjust_request(
    wallet: Wallet,
    amount: str,
    operation_type: int = OPEN,
    request_id: str | None = None,
    **fields: object,
) -> pb.AdjustRequest:
    values: dict[str, object] = {
        "account": wallet.key,
        "user_name": wallet.user_name,
        "request_id": unique("exe") if request_id is None else request_id,
        "operation_type": operation_type,
        "amount": amount,
        "amount_digits": wallet.digits,
        "biz_type": 1,
        "order_id": 42,
        "request_time_ms": 1_764_000_000_000,
        "client_ip": "203.0.113.7",
    }
    values.update(fields)
    return pb.AdjustRequest(**_nest(values))  # type: ignore[arg-type]


def cancel_request(
    wallet: Wallet,
    target_request_id: str,
    amount: str,
    request_id: str | None = None,
    **fields: object,
) -> pb.CancelAdjustmentRequest:
    values: dict[str, object] = {
        "account": wallet.key,
        "user_name": wallet.user_name,
        "request_id": unique("cxl") if request_id is None else request_id,
        "target_request_id": target_request_id,
        "amount": amount,
        "amount_digits": wallet.digits,
        "biz_type": 1,
        "cancel_remark": "timeout",
        "request_time_ms": 1_764_000_000_000,
        "client_ip": "203.0.113.7",
    }
    values.update(fields)
    return pb.CancelAdjustmentRequest(**_nest(values))  # type: ignore[arg-type]


def error_detail(error: grpc.aio.AioRpcError) -> ErrorDetail:
    """The ErrorInfo (and BadRequest) packed in a ledger error status."""
    detail = client_error_detail(error)
    assert detail is not None, f"no ledger ErrorInfo in {error!r}"
    return detail


def outcome_of(message: Any) -> str:
    """What the ledger answered, by name: a result ("APPLIED",
    "EXISTS_WITH_DIFFERENT_AMOUNT", a request record's), or an error's reason."""
    if isinstance(message, ErrorDetail):
        return message.reason
    if isinstance(message, grpc.aio.AioRpcError):
        return error_detail(message).reason
    which = "result"
    if isinstance(message, pb.RequestRecord):
        which = message.WhichOneof("result") or ""
        if not which:
            return ""
    enum = message.DESCRIPTOR.fields_by_name[which].enum_type
    return result_name(getattr(pb, enum.name), getattr(message, which))


async def balance_of(stub: object, wallet: Wallet) -> str:
    answer = await stub.GetBalance(pb.GetBalanceRequest(account=wallet.key))  # type: ignore[attr-defined]
    return str(answer.balance.amount)
