"""Our own OpenAPI 3 document for the three webhooks, served at /openapi.json:
the request schemas as the facade validates them, and every answer code."""

from __future__ import annotations

from typing import Any

from . import codes

_AMOUNT = {
    "type": "string",
    "pattern": r"^-?[0-9]{1,18}(\.[0-9]{1,18})?$",
    "description": "Plain decimal string; no exponent, no plus sign. At most amountDigits "
    "fractional digits.",
}
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
    "bizType": {
        "type": "integer",
        "format": "int32",
        "description": "1, 2, 10, 11, 12 as documented; other integers are recorded.",
    },
    "amount": _AMOUNT,
    "amountDigits": {
        "type": "integer",
        "minimum": 0,
        "maximum": 18,
        "description": "Must equal the account's currency scale.",
    },
    "orderId": {"type": "integer", "format": "int64", "minimum": 0},
    "requestUniqueNo": {
        "type": "string",
        "minLength": 1,
        "maxLength": 48,
        "description": "Idempotency key.",
    },
    "requestTime": {
        "type": "integer",
        "format": "int64",
        "minimum": 1000000000000,
        "maximum": 9999999999999,
        "description": "13-digit epoch milliseconds.",
    },
    "ip": {"type": "string", "minLength": 1, "maxLength": 64},
    "metadata": {"type": "string", "maxLength": 200, "description": "Optional JSON text."},
}


def _headers(timestamp_required: bool) -> list[dict[str, Any]]:
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
            "required": timestamp_required,
            "schema": {"type": "string", "pattern": "^[0-9]{13}$"},
            "description": "13-digit epoch milliseconds.",
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
    timestamp_required: bool,
) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": _headers(timestamp_required),
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
        "cancelRemark": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    money_required = [
        "thirdServerCode",
        "userName",
        "currency",
        "bizType",
        "amount",
        "amountDigits",
        "requestUniqueNo",
        "requestTime",
        "ip",
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
                True,
            ),
            f"{prefix}/external-system-credit-limit-adjustment": _operation(
                "Execute adjustment",
                execute_fields,
                [*money_required, "operationType", "orderId"],
                _EMPTY_DATA,
                True,
            ),
            f"{prefix}/cancel-external-system-credit-limit-adjustment": _operation(
                "Cancel adjustment",
                cancel_fields,
                [*money_required, "reverseRequestUniqueNo", "cancelRemark"],
                _EMPTY_DATA,
                False,
            ),
        },
    }
