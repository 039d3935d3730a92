"""Group commit: the executes and cancels that arrive while a transaction is in
flight travel together in the next one (ledger_client/batching.py: sent at
once while a slot is free, never waiting for company).

A batch is one statement, `ledger_apply_batch` (functions/20_trading.sql),
which locks its wallets in one global order and applies the movements in
arrival order; each movement gets its own row, and its caller is answered only
after the batch committed. A burst is spread by customer over the free slots
(a customer's movements stay together, in arrival order): PostgreSQL runs each
statement on one core, and one long batch left the other slot idle. When a
batch fails for a reason other than the ones run_transaction retries, each of
its movements runs again alone, so one bad movement fails only its own caller.

On a Citus cluster each worker has a batcher of its own (shard_routing.py),
so a batch holds only wallets of one worker and is delegated whole to it; a
slow or restarting worker holds up only its own wallets.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import NamedTuple

import asyncpg

from ledger_client.batching import Batcher, Waiting

from . import metrics, money
from .database import run_transaction, until_deadline
from .errors import LedgerError
from .shard_routing import ShardRouter

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


# $1: a customer of the batch, by which Citus routes the call (all of the
# batch's wallets are on that customer's worker).
_BATCH = """SELECT * FROM ledger_apply_batch(
    $1::text, $2::boolean[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
    $8::numeric[], $9::text[], $10::integer[], $11::integer[], $12::bigint[], $13::bigint[],
    $14::text[], $15::text[], $16::bigint[], $17::text[], $18::text[],
    $19::text[]::operation_type[], $20::text[]::request_outcome[], $21::text[],
    $22::numeric[], $23::boolean[], $24::text[]::overtrading_policy[], $25::text[],
    $26::text[], $27::numeric)"""


_Waiting = Waiting[Movement, asyncpg.Record]


def _customer(movement: Movement) -> str:
    return movement.customer


class GroupCommit:
    def __init__(
        self,
        pool: asyncpg.Pool,
        max_size: int,
        max_in_flight: int,
        router: ShardRouter | None = None,
    ) -> None:
        self._pool = pool
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._router = router
        # One batcher per worker (one in all on a single PostgreSQL).
        self._batchers: dict[int, Batcher[Movement, asyncpg.Record]] = {}

    def _batcher(self, customer: str) -> Batcher[Movement, asyncpg.Record]:
        group = self._router.group_of(customer) if self._router is not None else 0
        batcher = self._batchers.get(group)
        if batcher is None:
            batcher = Batcher(
                self._commit, self._max_size, self._max_in_flight, spread_by=_customer
            )
            self._batchers[group] = batcher
        return batcher

    async def apply(self, movement: Movement, deadline: float) -> asyncpg.Record:
        """The movement's row from ledger_apply_batch, once its batch committed."""
        answer = self._batcher(movement.customer).enqueue(movement, deadline)
        # A caller that gives up (its deadline, a cancelled call) cancels only
        # its own future; a movement still queued is then never sent. One
        # whose batch is in flight may still commit: like any call that ran
        # out of time, its outcome is unknown to the caller (TradeBoss cancels).
        return await until_deadline(answer, deadline)

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
        return await connection.fetch(_BATCH, batch[0].item.customer, *columns, money.MAX_BALANCE)

    return await run_transaction(pool, statement, deadline)
