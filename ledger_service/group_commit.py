"""Group commit: the executes and cancels that arrive while a transaction is in
flight travel together in the next one (ledger_client/batching.py: sent at
once while a slot is free, never waiting for company).

A batch is one statement, `ledger_apply_batch` (functions/20_trading.sql),
which locks its wallets in one global order and applies the movements in
arrival order; each movement gets its own row, and its caller is answered only
after the batch committed. When a batch fails for a reason other than the ones
run_transaction retries, each of its movements runs again alone, so one bad
movement fails only its own caller.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from ledger_client.batching import Batcher, Waiting

from . import metrics, money
from .database import run_transaction
from .errors import LedgerError
from .outcomes import Outcome

log = logging.getLogger(__name__)


class Movement(NamedTuple):
    """One execute or cancel: the arguments of ledger_adjust or ledger_cancel,
    in ledger_apply_batch's order (the other function's are None)."""

    is_cancel: bool
    company_id: int
    customer: str
    request_unique_no: str | None
    currency: str | None
    user_name: str | None
    amount: Decimal | None
    amount_as_sent: str
    amount_digits: int
    biz_type: int
    order_id: int
    request_time_ms: int
    client_ip: str
    metadata: str
    header_timestamp_ms: int | None
    input_notes: str | None
    trace_id: str
    # Execute only.
    operation_type: str | None = None
    refusal: str | None = None
    refused_field: str | None = None
    delta: Decimal | None = None
    may_overdraw: bool | None = None
    overtrading_policy: str | None = None
    # Cancel only.
    reverse_request_unique_no: str | None = None
    cancel_remark: str | None = None


_BATCH = """SELECT * FROM ledger_apply_batch(
    $1::boolean[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::numeric[], $8::text[], $9::integer[], $10::integer[], $11::bigint[], $12::bigint[],
    $13::text[], $14::text[], $15::bigint[], $16::text[], $17::text[],
    $18::text[]::operation_type[], $19::text[]::request_outcome[], $20::text[],
    $21::numeric[], $22::boolean[], $23::text[]::overtrading_policy[], $24::text[],
    $25::text[], $26::numeric)"""


_Waiting = Waiting[Movement, asyncpg.Record]


class GroupCommit:
    def __init__(self, pool: asyncpg.Pool, max_size: int, max_in_flight: int) -> None:
        self._pool = pool
        self._batcher: Batcher[Movement, asyncpg.Record] = Batcher(
            self._commit, max_size, max_in_flight
        )

    async def apply(self, movement: Movement, deadline: float) -> asyncpg.Record:
        """The movement's row from ledger_apply_batch, once its batch committed."""
        answer = self._batcher.enqueue(movement, deadline)
        # A caller that gives up (its deadline, a cancelled call) cancels only
        # its own future; a movement still queued is then never sent. One
        # whose batch is in flight may still commit: like any call that ran
        # out of time, its outcome is unknown to the caller (TradeBoss cancels).
        try:
            async with asyncio.timeout_at(deadline):
                return await answer
        except TimeoutError:
            metrics.DEADLINE_EXPIRIES.inc()
            raise LedgerError(
                Outcome.DEADLINE_EXCEEDED, "the deadline ran out before the ledger could answer"
            ) from None

    async def _commit(self, batch: list[_Waiting]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        try:
            rows = await _run(self._pool, batch)
        except LedgerError as error:
            # Deadline, unavailable, aborted after retries: nothing committed
            # that the caller can rely on; each caller gets the error.
            for waiting in batch:
                waiting.settle(error=error)
            return
        except Exception as error:
            if len(batch) == 1:
                batch[0].settle(error=error)
                return
            log.warning("a batch of %d failed (%r); running each alone", len(batch), error)
            for waiting in batch:
                await self._commit([waiting])
            return
        for waiting, row in zip(batch, rows, strict=True):
            waiting.settle(row)


async def _run(pool: asyncpg.Pool, batch: list[_Waiting]) -> list[asyncpg.Record]:
    columns = list(zip(*(waiting.item for waiting in batch), strict=True))
    deadline = max(waiting.deadline for waiting in batch)

    async def statement(connection: asyncpg.Connection) -> list[asyncpg.Record]:
        return await connection.fetch(_BATCH, *columns, money.MAX_BALANCE)

    return await run_transaction(pool, statement, deadline)
