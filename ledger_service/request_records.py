"""The requests table: every request number the ledger has seen and its outcome."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from decimal import Decimal

import asyncpg

from . import validation
from .database import run_transaction
from .errors import LedgerError
from .model import AccountKey
from .outcomes import Outcome


@dataclass(frozen=True)
class RequestRecord:
    company_id: int
    customer: str
    request_unique_no: str
    kind: str  # adjustment, cancel, deposit, withdrawal, tombstone
    currency: str
    outcome: str  # an Outcome name without its OUTCOME_ prefix
    user_name: str = ""
    operation_type: str | None = None
    amount: Decimal | None = None
    amount_as_sent: str | None = None
    amount_digits: int | None = None
    biz_type: int | None = None
    order_id: int | None = None
    request_time_ms: int | None = None
    client_ip: str | None = None
    metadata: str | None = None
    cancel_remark: str | None = None
    funding_note: str | None = None
    header_timestamp_ms: int | None = None
    input_notes: str | None = None
    refused_field: str | None = None
    reverse_request_unique_no: str | None = None
    applied_amount: Decimal = Decimal(0)
    balance_after: Decimal | None = None
    overtrading_policy: str | None = None
    reversed_by: str | None = None
    reversed_at: datetime | None = None
    trace_id: str = ""
    created_at: datetime | None = None

    @property
    def outcome_value(self) -> Outcome:
        return Outcome[self.outcome]


_COLUMNS = [field.name for field in fields(RequestRecord)]

_FIND = f"""
SELECT {", ".join(_COLUMNS)} FROM requests
WHERE company_id = $1 AND customer = $2 AND request_unique_no = $3"""


def outcome_name(outcome: Outcome) -> str:
    return Outcome(outcome).name


async def find(
    connection: asyncpg.Connection, key: AccountKey, request_unique_no: str, *, lock: bool = False
) -> RequestRecord | None:
    query = _FIND + (" FOR UPDATE" if lock else "")
    row = await connection.fetchrow(query, key.company_id, key.customer, request_unique_no)
    return None if row is None else RequestRecord(**dict(row))


def first_difference(pairs: list[tuple[str, object, object]]) -> str:
    """The name of the first (field, recorded, requested) pair that differs, or ""."""
    for name, recorded, requested in pairs:
        if recorded != requested:
            return name
    return ""


async def get_request(
    pool: asyncpg.Pool, key: AccountKey, request_unique_no: str, deadline: float
) -> RequestRecord:
    validation.account_key(key)
    validation.text(request_unique_no, "request_id", validation.MAX_REQUEST_NO)

    async def read(connection: asyncpg.Connection) -> RequestRecord | None:
        return await find(connection, key, request_unique_no)

    record = await run_transaction(pool, read, deadline, appends_journal=False)
    if record is None:
        raise LedgerError(
            Outcome.REQUEST_NOT_FOUND,
            f"no request {request_unique_no!r} for customer {key.customer!r}",
            "request_id",
        )
    return record
