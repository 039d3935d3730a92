"""Reading TradeBoss's headers and bodies into the ledger's requests: the JSON
shape only. Money rules (amount syntax, signs, scale, limits) are the
ledger's; a field that cannot take its proto shape is sent to the ledger as an
InputError, so an identifiable execute is still recorded with its refusal.

Tolerance (README, "Webhook rules"): integers as JSON integers or strings of
ASCII digits within int64; free text as any string (empty, control
characters); metadata as any JSON value, kept as its compact JSON text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from protos.ledger.v1 import ledger_pb2 as pb

from . import codes
from .envelope import Answer

MAX_TRACE = 128
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_POSITIVE_INTEGER = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
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
    # Recorded when it parses; nothing depends on it, so it never refuses.
    timestamp: int | None


def trace_of(headers: Any) -> str:
    """The trace to echo: the header as sent if it is printable and not too long."""
    trace = headers.get("trace", "")
    if len(trace) > MAX_TRACE or _CONTROL.search(trace):
        return ""
    return str(trace)


def parse_headers(headers: Any) -> Headers:
    trace = headers.get("trace")
    if not trace or len(trace) > MAX_TRACE or _CONTROL.search(trace):
        raise Answer(codes.INVALID_HEADER, "trace")
    company = headers.get("companyId", "")
    if not _POSITIVE_INTEGER.fullmatch(company) or int(company) > INT64_MAX:
        raise Answer(codes.INVALID_HEADER, "companyId")
    return Headers(trace, int(company), _int64_or_none(headers.get("timestamp")))


def _int64_or_none(value: object) -> int | None:
    """A JSON integer, or a string of ASCII digits, within 0..int64."""
    if type(value) is int:
        number = value
    elif isinstance(value, str) and _DIGITS.fullmatch(value):
        number = int(value)
    else:
        return None
    return number if 0 <= number <= INT64_MAX else None


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


@dataclass
class Shape:
    """Reads one webhook body into proto field values. The first field that
    cannot take its shape is kept as `error` (for an execute, the ledger
    records the refusal); optional fields that cannot be used are noted."""

    body: dict[str, Any]
    error: pb.InputError | None = None
    notes: list[str] = field(default_factory=list)

    def _fail(self, proto_field: str, message: str) -> None:
        if self.error is None:
            self.error = pb.InputError(field=proto_field, message=message)

    def text(self, name: str, proto_field: str) -> str:
        """A required string, as sent (its length and content are the ledger's rules)."""
        value = self.body.get(name)
        if isinstance(value, str):
            return value
        self._fail(
            proto_field, f"{name} is required" if value is None else f"{name} must be a string"
        )
        return ""

    def integer(self, name: str, proto_field: str, minimum: int, maximum: int) -> int:
        """A required integer: a JSON integer or a string of ASCII digits."""
        value = self.body.get(name)
        number = _integer(value)
        if number is not None and minimum <= number <= maximum:
            return number
        self._fail(
            proto_field,
            f"{name} is required"
            if value is None
            else f"{name} must be an integer from {minimum} to {maximum}",
        )
        return 0

    def optional_integer(self, name: str, minimum: int, maximum: int) -> int:
        """An integer the ledger only records: unusable is noted, never refused."""
        value = self.body.get(name)
        number = _integer(value)
        if number is not None and minimum <= number <= maximum:
            return number
        if value is not None:
            self.notes.append(f"{name} unusable: {_compact(value)[:60]}")
        return 0

    def operation_type(self) -> pb.OperationType.ValueType:
        value = self.body.get("operationType")
        if isinstance(value, str) and value in OPERATION_TYPES:
            return OPERATION_TYPES[value]
        self._fail("operation_type", "operationType must be one of " + ", ".join(OPERATION_TYPES))
        return pb.OPERATION_TYPE_UNSPECIFIED

    def free_text(self, name: str) -> str:
        """Any string as sent; another JSON value as its compact JSON text (noted)."""
        value = self.body.get(name)
        if value is None or isinstance(value, str):
            return value or ""
        self.notes.append(f"{name} was a JSON {type(value).__name__}, kept as its JSON text")
        return _compact(value)

    def metadata(self) -> str:
        """Any JSON value: a string as sent, anything else as its compact JSON text."""
        value = self.body.get("metadata")
        if value is None or isinstance(value, str):
            return value or ""
        return _compact(value)


def _integer(value: object) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return None  # floats, booleans, signs, spaces, other strings


def _compact(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
