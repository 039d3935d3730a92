"""The three webhooks: each reads parse -> validate -> call the ledger -> render.

`webhook` wraps them with what every call shares: the caller checks, the
headers, the body, the envelope, the log line and the metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from protos.ledger.v1 import ledger_pb2 as pb

from . import codes, metrics, security, validation
from .codes import Code
from .envelope import Answer, render
from .ledger_client import LedgerClient, conflict_params
from .settings import FacadeSettings
from .validation import INT32_MAX, INT64_MAX, Headers

log = logging.getLogger(__name__)

Result = tuple[Code, tuple[str, ...], dict[str, Any]]


@dataclass(frozen=True)
class Call:
    """One webhook call, its headers and body already checked."""

    headers: Headers
    body: dict[str, Any]
    ledger: LedgerClient
    log_fields: dict[str, Any]

    def account(self) -> pb.AccountKey:
        return pb.AccountKey(
            company_id=self.headers.company_id,
            customer=validation.text(self.body, "thirdServerCode", 64),
            currency=self.currency(),
        )

    def currency(self) -> str:
        return validation.text(self.body, "currency", 16)


def webhook(
    endpoint: str, *, timestamp_required: bool
) -> Callable[[Callable[[Call], Awaitable[Result]]], Callable[[Request], Awaitable[Response]]]:
    def decorate(
        handler: Callable[[Call], Awaitable[Result]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def answer(request: Request) -> Response:
            started = time.perf_counter()
            settings: FacadeSettings = request.app.state.settings
            trace = validation.trace_of(request.headers)
            log_fields: dict[str, Any] = {"endpoint": endpoint, "trace": trace}
            result: Result = (codes.INTERNAL_ERROR, (), {})
            metrics.IN_FLIGHT.labels(endpoint).inc()
            try:
                _check_caller(request, settings)
                headers = validation.parse_headers(
                    request.headers, timestamp_required=timestamp_required
                )
                log_fields["company_id"] = headers.company_id
                if (
                    settings.allowed_companies
                    and headers.company_id not in settings.allowed_companies
                ):
                    metrics.REJECTIONS.labels("company").inc()
                    raise Answer(codes.COMPANY_NOT_ALLOWED, str(headers.company_id))
                raw = await _read_body(request, settings.max_body_bytes)
                secret: bytes | None = request.app.state.hmac_secret
                if secret is not None and not security.signature_valid(
                    secret, raw, request.headers.get(security.SIGNATURE_HEADER)
                ):
                    metrics.REJECTIONS.labels("signature").inc()
                    raise Answer(codes.BAD_SIGNATURE)
                body = validation.parse_body(
                    raw, request.headers.get("content-type"), settings.max_body_bytes
                )
                number = body.get("requestUniqueNo")
                if isinstance(number, str):
                    log_fields["request_unique_no"] = number[:48]
                result = await handler(Call(headers, body, request.app.state.ledger, log_fields))
            except Answer as refusal:
                result = (refusal.code, refusal.params, refusal.data)
            except Exception:
                log.exception("internal error on %s (trace %s)", endpoint, trace)
                result = (codes.INTERNAL_ERROR, (), {})
            finally:
                elapsed = time.perf_counter() - started
                code = result[0]
                metrics.IN_FLIGHT.labels(endpoint).dec()
                metrics.LATENCY.labels(endpoint).observe(elapsed)
                metrics.REQUESTS.labels(endpoint, code.code).inc()
                log_fields.update(code=code.code, duration_ms=round(elapsed * 1000, 2))
                log.info("%s %s", endpoint, code.code, extra={"fields": log_fields})
            return render(result[0], result[1], trace, started, result[2])

        return answer

    return decorate


def _check_caller(request: Request, settings: FacadeSettings) -> None:
    peer = request.client.host if request.client else None
    address = security.caller_address(
        peer, request.headers.get("x-forwarded-for"), settings.trusted_proxies
    )
    if not security.allowed(address, settings.allowed_networks):
        metrics.REJECTIONS.labels("network").inc()
        log.warning("refused caller %s (peer %s)", address, peer)
        raise Answer(codes.CALLER_NOT_ALLOWED, address)


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


@webhook("get-user-amount", timestamp_required=True)
async def get_user_amount(call: Call) -> Result:
    account = call.account()
    user_name = validation.text(call.body, "userName", 48)
    answer = await call.ledger.balance(
        pb.GetBalanceRequest(account=account, user_name=user_name), call.headers.trace
    )
    balance = answer.balance
    data = {
        "userName": balance.user_name or user_name,
        "currency": account.currency,
        "amount": balance.amount,
        "amountDigits": balance.digits,
        # TradeBoss's example uses snake_case, its schema camelCase: send both.
        "user_name": balance.user_name or user_name,
        "amount_digits": balance.digits,
    }
    return codes.SUCCESS, (), data


@webhook("external-system-credit-limit-adjustment", timestamp_required=True)
async def execute(call: Call) -> Result:
    body = call.body
    account = call.account()
    user_name = validation.text(body, "userName", 48)
    biz_type = validation.integer(body, "bizType", -INT32_MAX - 1, INT32_MAX)
    operation_type = validation.operation_type(body)
    amount_digits = validation.integer(body, "amountDigits", 0, 18)
    amount = validation.amount(body, amount_digits, operation_type)
    request = pb.AdjustRequest(
        account=account,
        user_name=user_name,
        operation_type=operation_type,
        amount=amount,
        amount_digits=amount_digits,
        biz_type=biz_type,
        order_id=validation.integer(body, "orderId", 0, INT64_MAX),
        request_unique_no=validation.text(body, "requestUniqueNo", 48),
        request_time_ms=validation.request_time(body),
        client_ip=validation.text(body, "ip", 64),
        metadata=validation.text(body, "metadata", 200, required=False),
    )
    answer = await call.ledger.adjust(request, call.headers.trace)
    code = codes.CODE_OF_OUTCOME[answer.outcome]
    if answer.outcome == pb.OUTCOME_APPLIED and not answer.replayed:
        operation = pb.OperationType.Name(operation_type).removeprefix("OPERATION_TYPE_")
        metrics.money_moved(account.currency, operation, answer.applied_amount)
    return code, conflict_params(answer.conflict_field), {}


@webhook("cancel-external-system-credit-limit-adjustment", timestamp_required=False)
async def cancel(call: Call) -> Result:
    body = call.body
    account = call.account()
    user_name = validation.text(body, "userName", 48)
    biz_type = validation.integer(body, "bizType", -INT32_MAX - 1, INT32_MAX)
    amount_digits = validation.integer(body, "amountDigits", 0, 18)
    amount = validation.amount(body, amount_digits, None)
    request = pb.CancelAdjustmentRequest(
        account=account,
        user_name=user_name,
        amount=amount,
        amount_digits=amount_digits,
        biz_type=biz_type,
        order_id=validation.integer(body, "orderId", 0, INT64_MAX, required=False),
        request_unique_no=validation.text(body, "requestUniqueNo", 48),
        reverse_request_unique_no=validation.text(body, "reverseRequestUniqueNo", 48),
        request_time_ms=validation.request_time(body),
        client_ip=validation.text(body, "ip", 64),
        cancel_remark=validation.text(body, "cancelRemark", 200),
        metadata=validation.text(body, "metadata", 200, required=False),
    )
    call.log_fields["reverse_request_unique_no"] = request.reverse_request_unique_no
    answer = await call.ledger.cancel(request, call.headers.trace)
    if answer.outcome == pb.OUTCOME_REVERSED and not answer.replayed:
        metrics.money_moved(account.currency, "reversal", answer.reversed_amount)
    return codes.CODE_OF_OUTCOME[answer.outcome], conflict_params(answer.conflict_field), {}


async def healthz(request: Request) -> Response:
    """The process is up."""
    return JSONResponse({"status": "up"})


async def readyz(request: Request) -> Response:
    """The ledger answers its health check."""
    ledger: LedgerClient = request.app.state.ledger
    if await ledger.ready():
        return JSONResponse({"status": "ready", "ledger": ledger.target})
    return JSONResponse({"status": "ledger unreachable", "ledger": ledger.target}, status_code=503)
