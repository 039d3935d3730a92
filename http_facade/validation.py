"""Reading TradeBoss's headers and bodies into the ledger's requests: the JSON
shape only. Money rules (amount syntax, signs, scale, limits) are the
ledger's; a field that cannot take its proto shape is sent to the ledger as an
InputError, so an identifiable execute is still recorded with its refusal.

Tolerance (README, "Webhook rules") is declared once, in schema.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ledger_client import pb

from . import codes, schema
from .envelope import Answer

MAX_TRACE = 128
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
_POSITIVE_INTEGER = re.compile(r"[1-9][0-9]{0,18}", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
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
        # What json.loads does with bytes, with a decoder made once (json.loads
        # builds one per call when given hooks).
        body = _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))
    except _DuplicateKey as duplicate:
        # Which `amount` was meant is ambiguous: refuse the body, name the key.
        raise Answer(codes.INVALID_BODY, f"duplicate key {duplicate.key}") from None
    except (ValueError, RecursionError):
        raise Answer(codes.INVALID_BODY, "invalid JSON") from None
    if not isinstance(body, dict):
        raise Answer(codes.INVALID_BODY, "not an object")
    if b"\\u" not in raw:  # a lone surrogate can only come in as a \\u escape
        return body
    return {name: _without_lone_surrogates(name, value) for name, value in body.items()}


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key[:40]


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return body


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant, object_pairs_hook=_unique_keys)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Text that is only recorded: a lone surrogate (which no UTF-8 store can keep)
# is shown as U+FFFD rather than refusing what must never be refused.
_FREE_TEXT = {"ip", "cancelRemark", "metadata"}


def _without_lone_surrogates(name: str, value: Any) -> Any:
    """JSON may escape half a UTF-16 pair ("\\ud800"); it is no text."""
    if not _LONE_SURROGATE.search(json.dumps(value, ensure_ascii=False)):
        return value
    if name in _FREE_TEXT:
        return json.loads(_LONE_SURROGATE.sub("\ufffd", json.dumps(value, ensure_ascii=False)))
    raise Answer(codes.INVALID_PARAMETER, name)


@dataclass
class Shape:
    """Reads one webhook body by its declaration (schema.py). A required field
    that fails is kept as `error` (for an execute, the ledger records the
    refusal); an optional one that fails is noted and left out."""

    model: type[schema.WebhookBody]
    body: dict[str, Any]
    error: pb.InputError | None = None
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._valid = schema.read_all(self.model, self.body)

    def get(self, name: str) -> Any:
        if self._valid is not None:
            return self._valid[name]
        value, problem = schema.read_field(self.model, self.body, name)
        if problem is None:
            return value
        if self.model.model_fields[name].is_required():
            if self.error is None:
                self.error = pb.InputError(field=schema.PROTO_FIELD[name], message=problem)
        else:
            self.notes.append(f"{problem} (sent {schema.compact_json(self.body[name])[:60]})")
        return None

    def text(self, name: str) -> str:
        return str(self.get(name) or "")

    def integer(self, name: str) -> int:
        return int(self.get(name) or 0)

    def metadata(self) -> str:
        """Any JSON value: a string as sent, anything else as its compact JSON text."""
        value = self.get("metadata")
        return (
            value if isinstance(value, str) else "" if value is None else schema.compact_json(value)
        )
