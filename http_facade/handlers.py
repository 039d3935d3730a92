"""The three webhooks: each reads parse -> validate -> call the ledger -> render.

What every call shares lives elsewhere: the log line, metrics and caller
allowlist are middleware (middleware.py); a refusal raised anywhere (Answer)
becomes its envelope in one exception handler (`refusal` below).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ledger_client import pb, result_name

from . import codes, metrics, schema, security, validation
from .codes import Code
from .envelope import Answer, render
from .ledger_client import LedgerClient, field_params
from .settings import FacadeSettings
from .validation import OPERATION_TYPES, Headers, Shape

log = logging.getLogger(__name__)

# TradeBoss gives up on a webhook 3 s after sending it; the answer needs a
# moment to travel back. One budget per webhook, from its arrival.
TRADEBOSS_TIMEOUT = 3.0
ANSWER_MARGIN = 0.2


@dataclass(frozen=True)
class Call:
    """One webhook call, its headers and body read and checked."""

    headers: Headers
    body: dict[str, Any]
    ledger: LedgerClient
    log_fields: dict[str, Any]
    arrived: float  # time.perf_counter() when the request arrived

    def account(self, shape: Shape) -> pb.AccountKey:
        """The wallet a webhook names: its company header, thirdServerCode, currency."""
        return pb.AccountKey(
            company_id=self.headers.company_id,
            customer=shape.text("thirdServerCode"),
            currency=shape.text("currency"),
        )

    def ledger_timeout(self) -> float:
        """What is left of the webhook's budget, capped by the ledger deadline setting."""
        left = TRADEBOSS_TIMEOUT - ANSWER_MARGIN - (time.perf_counter() - self.arrived)
        return max(0.0, min(self.ledger.deadline, left))


def respond(
    request: Request, code: Code, params: tuple[str, ...] = (), data: dict[str, Any] | None = None
) -> Response:
    """The envelope, its code noted for the log line and the metrics."""
    state = request.state
    state.code = code.code
    # A webhook's middleware read both when it arrived; other paths have neither.
    arrived = getattr(state, "arrived", None) or time.perf_counter()
    trace = getattr(state, "trace", None)
    if trace is None:
        trace = validation.trace_of(request.headers)
    return render(code, params, trace, arrived, data or {})


async def refusal(request: Request, error: Exception) -> Response:
    """Every Answer raised on the way, as its envelope."""
    assert isinstance(error, Answer)
    return respond(request, error.code, error.params, error.data)


async def internal_error(request: Request, error: Exception) -> Response:
    log.error("internal error (trace %s)", validation.trace_of(request.headers), exc_info=error)
    return respond(request, codes.INTERNAL_ERROR)


async def webhook_call(request: Request) -> Call:
    """Headers, tenant, body and signature, in that order; Answer on the first refusal."""
    settings: FacadeSettings = request.app.state.settings
    headers = validation.parse_headers(request.headers)
    fields: dict[str, Any] = request.state.log_fields
    fields["company_id"] = headers.company_id
    if settings.allowed_companies and headers.company_id not in settings.allowed_companies:
        metrics.REJECTIONS.labels("company").inc()
        raise Answer(codes.COMPANY_NOT_ALLOWED, str(headers.company_id))
    raw = await _read_body(request, settings.max_body_bytes)
    secret: bytes | None = request.app.state.hmac_secret
    if secret is not None and not security.signature_valid(
        secret, request.headers, raw, int(time.time() * 1000), settings.signature_window
    ):
        metrics.REJECTIONS.labels("signature").inc()
        raise Answer(codes.BAD_SIGNATURE)
    body = validation.parse_body(raw, request.headers.get("content-type"), settings.max_body_bytes)
    return Call(headers, body, request.app.state.ledger, fields, request.state.arrived)


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it grows past the limit (never buffered whole)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Answer(codes.BODY_TOO_LARGE, str(limit))
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise Answer(codes.BODY_TOO_LARGE, str(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _adjustment_fields(call: Call, shape: Shape) -> dict[str, Any]:
    """What execute and cancel both carry, in the ledger's names. Read in this
    order, so an execute's first malformed field is the one its refusal names;
    the notes come last, once every field has been read."""
    fields = {
        "account": call.account(shape),
        "request_id": shape.text("requestUniqueNo"),
        "user_name": shape.text("userName"),
        "amount": shape.text("amount"),
        "amount_digits": shape.integer("amountDigits"),
        "tradeboss": pb.TradeBossFields(
            biz_type=shape.integer("bizType"),
            order_id=shape.integer("orderId"),
            request_time_ms=shape.integer("requestTime"),
            ip=shape.text("ip"),
            metadata=shape.metadata(),
            header_timestamp_ms=call.headers.timestamp or 0,
        ),
    }
    return {**fields, "input_notes": list(shape.notes)}


async def get_user_amount(http: Request) -> Response:
    call = await webhook_call(http)
    shape = Shape(schema.QueryBody, call.body)
    request = pb.GetBalanceRequest(
        account=call.account(shape),
        user_name=shape.text("userName"),
    )
    if shape.error is not None:  # a query moves no money: nothing to record
        raise Answer(codes.INVALID_PARAMETER, *field_params(shape.error.field))
    answer = await call.ledger.balance(request, call.headers.trace, call.ledger_timeout())
    balance = answer.balance
    user_name = balance.user_name or request.user_name
    data = {
        "userName": user_name,
        "currency": request.account.currency,
        # What the customer may spend: holds of internal services are not.
        "amount": balance.available,
        "amountDigits": balance.digits,
        # TradeBoss's example uses snake_case, its schema camelCase: send both.
        "user_name": user_name,
        "amount_digits": balance.digits,
    }
    return respond(http, codes.SUCCESS, (), data)


async def execute(http: Request) -> Response:
    call = await webhook_call(http)
    shape = Shape(schema.ExecuteBody, call.body)
    operation_type = shape.get("operationType")
    request = pb.AdjustRequest(
        operation_type=OPERATION_TYPES.get(operation_type, pb.OPERATION_TYPE_UNSPECIFIED),
        **_adjustment_fields(call, shape),
    )
    if shape.error is not None:
        request.input_error.CopyFrom(shape.error)
    call.log_fields["request_unique_no"] = request.request_id[:48]
    answer = await call.ledger.adjust(request, call.headers.trace, call.ledger_timeout())
    if answer.result == pb.ADJUST_RESULT_APPLIED and not answer.replayed:
        metrics.money_moved(request.account.currency, str(operation_type), answer.applied_amount)
    code, conflict = codes.code_of(result_name(pb.AdjustResult, answer.result))
    return respond(http, code, field_params(conflict or answer.refused_field))


async def cancel(http: Request) -> Response:
    """Every field but the target's identity is only recorded: a cancel is
    never refused for a field the reversal does not use (the ledger judges
    the identity, so shape.error is not consulted here)."""
    call = await webhook_call(http)
    shape = Shape(schema.CancelBody, call.body)
    target_request_id = shape.text("reverseRequestUniqueNo")
    cancel_remark = shape.text("cancelRemark")
    request = pb.CancelAdjustmentRequest(
        target_request_id=target_request_id, **_adjustment_fields(call, shape)
    )
    request.tradeboss.remark = cancel_remark
    call.log_fields["request_unique_no"] = request.request_id[:48]
    call.log_fields["reverse_request_unique_no"] = request.target_request_id[:48]
    answer = await call.ledger.cancel(request, call.headers.trace, call.ledger_timeout())
    if answer.result == pb.CANCEL_RESULT_REVERSED and not answer.replayed:
        metrics.money_moved(request.account.currency, "reversal", answer.reversed_amount)
    code, _ = codes.code_of(result_name(pb.CancelResult, answer.result))
    return respond(http, code, ())
