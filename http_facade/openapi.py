"""Our own OpenAPI 3 document for the three webhooks, served at /openapi.json:
the request schemas as the facade validates them, and every answer code."""

from __future__ import annotations

from typing import Any

from . import codes

_AMOUNT = {
    "type": "string",
    "pattern": r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$",
    "description": "Plain decimal string; no exponent, no plus sign. Its value, trailing "
    "zeros dropped, has at most amountDigits fractional digits and is exact at the "
    "wallet's scale. A cancel's amount is only recorded.",
}


def _integer(description: str, minimum: int | None = None, fmt: str = "int64") -> dict[str, Any]:
    """A JSON integer, or a string of ASCII digits (Java gateways write longs so)."""
    number: dict[str, Any] = {"type": "integer", "format": fmt}
    if minimum is not None:
        number["minimum"] = minimum
    return {
        "oneOf": [number, {"type": "string", "pattern": "^[0-9]{1,19}$"}],
        "description": description,
    }


_FREE_TEXT = {"type": "string", "description": "Any text, kept as sent (cut past 64/200)."}
_COMMON_FIELDS: dict[str, Any] = {
    "thirdServerCode": {
        "type": "string",
        "minLength": 1,
        "maxLength": 64,
        "description": "Our customer id.",
    },
    "userName": {
        "type": "string",
        "minLength": 1,
        "maxLength": 48,
        "description": "TradeBoss's id of the customer; binds on first use.",
    },
    "currency": {"type": "string", "minLength": 1, "maxLength": 16},
}
_MONEY_FIELDS: dict[str, Any] = {
    "bizType": _integer(
        "1, 2, 10, 11, 12 as documented; other integers are recorded.", None, "int32"
    ),
    "amount": _AMOUNT,
    "amountDigits": _integer(
        "0..18: the most fractional digits the amount's value may need; a difference "
        "from the wallet's scale is counted and logged.",
        0,
        "int32",
    ),
    "orderId": _integer("Order id.", 0),
    "requestUniqueNo": {
        "type": "string",
        "minLength": 1,
        "maxLength": 48,
        "description": "Idempotency key.",
    },
    "requestTime": _integer("Epoch milliseconds; recorded, never refused.", 0),
    "ip": _FREE_TEXT,
    "metadata": {
        "description": "Optional: JSON text, or any JSON value (kept as its compact JSON text)."
    },
}


def _headers() -> list[dict[str, Any]]:
    return [
        {
            "name": "trace",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 128},
            "description": "Global link id; echoed in the answer.",
        },
        {
            "name": "companyId",
            "in": "header",
            "required": True,
            "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,18}$"},
            "description": "TradeBoss company id (an integer).",
        },
        {
            "name": "timestamp",
            "in": "header",
            "required": False,
            "schema": {"type": "string"},
            "description": "Epoch milliseconds; recorded when it parses, never refused.",
        },
    ]


def _envelope(data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["code", "msg", "msgParams", "bizCode", "trace", "tm", "data", "ok", "fail"],
        "properties": {
            "code": {
                "type": "string",
                "enum": [code.code for code in codes.ALL_CODES],
                "description": '"0" is success; see the codes in info.description.',
            },
            "msg": {"type": "string"},
            "msgParams": {
                "type": "string",
                "description": "Comma-separated values behind msg's placeholders.",
            },
            "bizCode": {"type": "string"},
            "trace": {"type": "string"},
            "tm": {"type": "integer", "format": "int64", "minimum": 0},
            "data": data,
            "ok": {"type": "boolean"},
            "fail": {"type": "boolean"},
        },
    }


_EMPTY_DATA = {"type": "object", "maxProperties": 0}
_BALANCE_DATA = {
    "type": "object",
    "properties": {
        "userName": {"type": "string"},
        "currency": {"type": "string"},
        "amount": {"type": "string", "description": "Exactly amountDigits fractional digits."},
        "amountDigits": {"type": "integer"},
        "user_name": {"type": "string"},
        "amount_digits": {"type": "integer"},
    },
}


def _operation(
    summary: str,
    fields: dict[str, Any],
    required: list[str],
    data: dict[str, Any],
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": _headers(),
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": fields,
                            "required": required,
                        }
                    }
                },
            },
            "responses": {
                "200": {
                    "description": "Always HTTP 200; the outcome is in `code`.",
                    "content": {"application/json": {"schema": _envelope(data)}},
                }
            },
        }
    }


def document(prefix: str = "") -> dict[str, Any]:
    code_list = "\n".join(f"- `{c.code}`: {c.msg}" for c in codes.ALL_CODES)
    execute_fields = {
        **_COMMON_FIELDS,
        **_MONEY_FIELDS,
        "operationType": {
            "type": "string",
            "enum": ["OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"],
        },
    }
    cancel_fields = {
        **_COMMON_FIELDS,
        **_MONEY_FIELDS,
        "reverseRequestUniqueNo": {"type": "string", "minLength": 1, "maxLength": 48},
        "cancelRemark": _FREE_TEXT,
    }
    money_required = [
        "thirdServerCode",
        "userName",
        "currency",
        "bizType",
        "amount",
        "amountDigits",
        "requestUniqueNo",
    ]
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "tradeboss-ledger webhook facade",
            "version": "1.0.0",
            "description": "TradeBoss's external-wallet webhooks as this facade serves them. "
            "Every answer is HTTP 200 with the envelope; `code` says what happened:\n\n"
            + code_list,
        },
        "paths": {
            f"{prefix}/get-user-amount": _operation(
                "Query balance",
                _COMMON_FIELDS,
                ["thirdServerCode", "userName", "currency"],
                _BALANCE_DATA,
            ),
            f"{prefix}/external-system-credit-limit-adjustment": _operation(
                "Execute adjustment",
                execute_fields,
                [*money_required, "operationType", "orderId"],
                _EMPTY_DATA,
            ),
            f"{prefix}/cancel-external-system-credit-limit-adjustment": _operation(
                "Cancel adjustment",
                cancel_fields,
                # Only the target's identity can refuse a cancel.
                ["thirdServerCode", "reverseRequestUniqueNo"],
                _EMPTY_DATA,
            ),
        },
    }
