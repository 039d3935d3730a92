"""Parsing TradeBoss's headers and bodies strictly, before anything reaches the
ledger. Every failure raises Answer with a specific code naming the field."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ledger_service import money
from ledger_service.errors import LedgerError
from protos.ledger.v1 import ledger_pb2 as pb

from . import codes
from .envelope import Answer

MAX_TRACE = 128
_DIGITS_13 = re.compile(r"[0-9]{13}", re.ASCII)
_POSITIVE_INTEGER = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1

OPERATION_TYPES = {
    "OPEN_POSITION": pb.OPERATION_TYPE_OPEN_POSITION,
    "NORMAL_CLOSE": pb.OPERATION_TYPE_NORMAL_CLOSE,
    "ABNORMAL_OVERTRADING": pb.OPERATION_TYPE_ABNORMAL_OVERTRADING,
}


@dataclass(frozen=True)
class Headers:
    trace: str
    company_id: int
    timestamp: int | None


def trace_of(headers: Any) -> str:
    """The trace to echo: the header as sent if it is printable and not too long."""
    trace = headers.get("trace", "")
    if len(trace) > MAX_TRACE or _CONTROL.search(trace):
        return ""
    return str(trace)


def parse_headers(headers: Any, *, timestamp_required: bool) -> Headers:
    trace = headers.get("trace")
    if not trace or len(trace) > MAX_TRACE or _CONTROL.search(trace):
        raise Answer(codes.INVALID_HEADER, "trace")
    company = headers.get("companyId", "")
    if not _POSITIVE_INTEGER.fullmatch(company) or int(company) > INT64_MAX:
        raise Answer(codes.INVALID_HEADER, "companyId")
    timestamp = headers.get("timestamp")
    if timestamp is None or timestamp == "":
        if timestamp_required:
            raise Answer(codes.INVALID_HEADER, "timestamp")
        return Headers(trace, int(company), None)
    if not _DIGITS_13.fullmatch(timestamp):
        raise Answer(codes.INVALID_HEADER, "timestamp")
    return Headers(trace, int(company), int(timestamp))


def parse_body(raw: bytes, content_type: str | None, max_bytes: int) -> dict[str, Any]:
    media_type = (content_type or "").split(";")[0].strip().lower()
    if media_type != "application/json":
        raise Answer(codes.UNSUPPORTED_MEDIA_TYPE)
    if len(raw) > max_bytes:
        raise Answer(codes.BODY_TOO_LARGE, str(max_bytes))
    if not raw.strip():
        raise Answer(codes.INVALID_BODY, "empty body")
    try:
        body = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise Answer(codes.INVALID_BODY, "invalid JSON") from None
    if not isinstance(body, dict):
        raise Answer(codes.INVALID_BODY, "not an object")
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def text(body: dict[str, Any], name: str, max_length: int, *, required: bool = True) -> str:
    value = body.get(name)
    if value is None:
        if required:
            raise Answer(codes.INVALID_PARAMETER, name)
        return ""
    if not isinstance(value, str) or len(value) > max_length or _CONTROL.search(value):
        raise Answer(codes.INVALID_PARAMETER, name)
    if required and not value:
        raise Answer(codes.INVALID_PARAMETER, name)
    return value


def integer(
    body: dict[str, Any], name: str, minimum: int, maximum: int, *, required: bool = True
) -> int:
    """A JSON integer: 12, not "12", 12.0 or true (see README, "Strict types")."""
    value = body.get(name)
    if value is None and not required:
        return 0
    if type(value) is not int or not minimum <= value <= maximum:
        raise Answer(codes.INVALID_PARAMETER, name)
    return value


def request_time(body: dict[str, Any]) -> int:
    value = integer(body, "requestTime", 0, INT64_MAX)
    if not _DIGITS_13.fullmatch(str(value)):
        raise Answer(codes.INVALID_PARAMETER, "requestTime")
    return value


def amount(
    body: dict[str, Any], digits: int, operation_type: pb.OperationType.ValueType | None
) -> str:
    """The amount string, checked by the ledger's own money rules."""
    value = text(body, "amount", 64)
    try:
        parsed: Decimal = money.parse_amount(value, digits)
        if operation_type is None:
            money.require_positive(parsed, "a cancel")
        else:
            money.check_sign(operation_type, parsed)
    except LedgerError as error:
        raise Answer(codes.CODE_OF_OUTCOME[error.outcome], "amount") from None
    return value


def operation_type(body: dict[str, Any]) -> pb.OperationType.ValueType:
    value = body.get("operationType")
    if not isinstance(value, str) or value not in OPERATION_TYPES:
        raise Answer(codes.INVALID_PARAMETER, "operationType")
    return OPERATION_TYPES[value]
