"""One declaration per webhook body. The facade's shape checks and its own
OpenAPI document are both derived from it: a field's type here is the shape
the facade accepts, its being required or not is whether a failure refuses
(an execute's is recorded by the ledger as INVALID_ARGUMENT) or is only noted.

The lawful variants (README, "Webhook rules") live in the types below:
integers as JSON integers or strings of ASCII digits within range; free text
as any string; metadata as any JSON value.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StrictInt,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from . import codes

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MAX = 2**63 - 1


def _within(minimum: int, maximum: int) -> AfterValidator:
    def check(value: int) -> int:
        if not minimum <= value <= maximum:
            raise ValueError(f"must be an integer from {minimum} to {maximum}")
        return value

    return AfterValidator(check)


_DigitString = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,19}$")]
# A JSON integer or a string of ASCII digits (Java gateways write 64-bit longs
# as strings so JavaScript keeps them exact); never a float or a boolean.
_Integer = Annotated[StrictInt | _DigitString, AfterValidator(int)]
Int32 = Annotated[_Integer, _within(INT32_MIN, INT32_MAX)]
Int64 = Annotated[_Integer, _within(0, INT64_MAX)]
# Any text, kept as sent; a non-string JSON value as its compact JSON text.
FreeText = Annotated[
    str, BeforeValidator(lambda value: value if isinstance(value, str) else compact_json(value))
]
OperationTypeName = Literal["OPEN_POSITION", "NORMAL_CLOSE", "ABNORMAL_OVERTRADING"]


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


_STRICT = ConfigDict(strict=True)


class WebhookBody(BaseModel):
    # Unknown fields are ignored: TradeBoss adds fields over time.
    model_config = ConfigDict(extra="ignore", strict=True)


class QueryBody(WebhookBody):
    """`/get-user-amount`: nothing moves, so every field is required."""

    thirdServerCode: str = Field(description="Our customer id.")
    userName: str = Field(description="TradeBoss's id of the customer; binds on first use.")
    currency: str


class ExecuteBody(WebhookBody):
    """`/external-system-credit-limit-adjustment`. Identified by companyId,
    thirdServerCode and requestUniqueNo, it is recorded whatever else is wrong."""

    thirdServerCode: str
    requestUniqueNo: str = Field(description="Idempotency key, 1..48 characters.")
    currency: str
    userName: str
    operationType: OperationTypeName
    amount: str = Field(
        description="Plain decimal string; its value, trailing zeros dropped, has at most "
        "amountDigits fractional digits and is exact at the wallet's scale."
    )
    amountDigits: Int32
    bizType: Int32 = Field(description="1, 2, 10, 11, 12 as documented; others recorded.")
    orderId: Int64
    # Recorded, never a refusal.
    requestTime: Int64 | None = Field(default=None, description="Epoch milliseconds.")
    ip: FreeText | None = None
    metadata: JsonValue = Field(default=None, description="JSON text, or any JSON value.")


class CancelBody(WebhookBody):
    """`/cancel-external-system-credit-limit-adjustment`: only its target's
    identity is required; everything else is recorded as sent."""

    thirdServerCode: str
    reverseRequestUniqueNo: str = Field(description="The execute's requestUniqueNo.")
    requestUniqueNo: FreeText | None = None
    currency: FreeText | None = None
    userName: FreeText | None = None
    amount: FreeText | None = Field(default=None, description="Recorded, never used.")
    amountDigits: Int32 | None = None
    bizType: Int32 | None = None
    orderId: Int64 | None = None
    requestTime: Int64 | None = None
    ip: FreeText | None = None
    cancelRemark: FreeText | None = None
    metadata: JsonValue = None


# TradeBoss's field names and the ledger's (proto) names for them: the one table.
PROTO_FIELD = {
    "thirdServerCode": "customer",
    "requestUniqueNo": "request_id",
    "reverseRequestUniqueNo": "target_request_id",
    "currency": "currency",
    "userName": "user_name",
    "operationType": "operation_type",
    "amount": "amount",
    "amountDigits": "amount_digits",
    "bizType": "tradeboss.biz_type",
    "orderId": "tradeboss.order_id",
    "requestTime": "tradeboss.request_time_ms",
    "ip": "tradeboss.ip",
    "cancelRemark": "tradeboss.remark",
    "metadata": "tradeboss.metadata",
    "companyId": "company_id",
}
TRADEBOSS_FIELD = {proto: name for name, proto in PROTO_FIELD.items()}


@cache
def _reader(model: type[WebhookBody], name: str) -> tuple[TypeAdapter[Any], bool]:
    """The field's validator and whether it is required, built once per field
    (read_field runs a dozen times per webhook)."""
    field = model.model_fields[name]
    return TypeAdapter(field.rebuild_annotation(), config=_STRICT), field.is_required()


def read_all(model: type[WebhookBody], body: dict[str, Any]) -> dict[str, Any] | None:
    """Every field as declared when the whole body is well-formed (the usual
    case: one validation instead of one per field), else None: the caller then
    reads field by field to learn which failed. The same types either way, so
    the values are the same."""
    try:
        return model.model_validate(body).__dict__
    except ValidationError:
        return None


def read_field(model: type[WebhookBody], body: dict[str, Any], name: str) -> tuple[Any, str | None]:
    """The field's value as declared, or (None, why) when it is missing or malformed."""
    adapter, required = _reader(model, name)
    value = body.get(name)
    if value is None:
        return None, f"{name} is required" if required else None
    try:
        return adapter.validate_python(value), None
    except ValidationError as error:
        reason = error.errors()[0]["msg"].removeprefix("Value error, ")
        return None, f"{name}: {reason}"


class BalanceData(BaseModel):
    """Filled on success; `{}` with any other code."""

    userName: str = ""
    currency: str = ""
    amount: str = Field(default="", description="Exactly amountDigits fractional digits.")
    amountDigits: int = 0
    user_name: str = Field(default="", description="TradeBoss's example reads snake_case too.")
    amount_digits: int = 0


class EmptyData(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _envelope(data: type[BaseModel]) -> type[BaseModel]:
    """TradeBoss's response envelope: always HTTP 200, every field always present."""
    code: Any = Literal[tuple(code.code for code in codes.ALL_CODES)]
    return create_model(
        f"Envelope{data.__name__.removesuffix('Data')}",
        code=(code, Field(description='"0" is success; the codes are in info.description.')),
        msg=(str, ...),
        msgParams=(str, Field(description="Comma-separated values behind msg's placeholder.")),
        bizCode=(str, ...),
        trace=(str, Field(description="The trace header, echoed.")),
        tm=(int, Field(ge=0, description="Milliseconds spent.")),
        data=(data, ...),
        ok=(bool, ...),
        fail=(bool, ...),
    )


WEBHOOKS: list[tuple[str, str, type[WebhookBody], type[BaseModel]]] = [
    ("/get-user-amount", "Query balance", QueryBody, BalanceData),
    ("/external-system-credit-limit-adjustment", "Execute adjustment", ExecuteBody, EmptyData),
    (
        "/cancel-external-system-credit-limit-adjustment",
        "Cancel adjustment",
        CancelBody,
        EmptyData,
    ),
]

_HEADERS = [
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


def openapi_document(prefix: str = "") -> dict[str, Any]:
    """The facade's OpenAPI 3.1 document, derived from the declarations above."""
    models: list[tuple[type[BaseModel], JsonSchemaMode]] = [
        (model, "validation") for _, _, model, _ in WEBHOOKS
    ]
    models += [(_envelope(data), "serialization") for _, _, _, data in WEBHOOKS]
    refs, definitions = models_json_schema(models, ref_template="#/components/schemas/{model}")
    paths = {}
    for index, (path, summary, body, _) in enumerate(WEBHOOKS):
        answer = refs[(models[len(WEBHOOKS) + index][0], "serialization")]
        paths[prefix + path] = {
            "post": {
                "summary": summary,
                "description": body.__doc__ or "",
                "parameters": _HEADERS,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": refs[(body, "validation")]}},
                },
                "responses": {
                    "200": {
                        "description": "Always HTTP 200; the outcome is in `code`.",
                        "content": {"application/json": {"schema": answer}},
                    }
                },
            }
        }
    code_list = "\n".join(f"- `{c.code}`: {c.msg}" for c in codes.ALL_CODES)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tradeboss-ledger webhook facade",
            "version": "1.0.0",
            "description": "TradeBoss's external-wallet webhooks as this facade serves them. "
            "Every answer is HTTP 200 with the envelope; `code` says what happened:\n\n"
            + code_list,
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
