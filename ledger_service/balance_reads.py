"""Balance reads that arrive while one is in flight are read together in the
next statement (the rule of ledger_client/batching.py: sent at once while a
slot is free, never waiting for company): one round trip to PostgreSQL for
many wallets instead of one each. A single statement reads one snapshot, so
it needs no transaction.

Only the plain read is batched: accounts.get_balance decides from the row
whether that answer is the whole answer (a first userName to bind, a
mismatch, an internal account go its own way). On a Citus cluster reads are
not batched: a read of many wallets would span shards and workers.
"""

from __future__ import annotations

import asyncpg

from ledger_client.batching import Batcher, Waiting

from . import accounts, metrics
from .database import run_transaction, until_deadline
from .model import AccountKey

_Waiting = Waiting[AccountKey, "accounts.AccountRow"]


class BalanceReads:
    def __init__(self, pool: asyncpg.Pool, max_size: int, max_in_flight: int) -> None:
        self._pool = pool
        self._batcher: Batcher[AccountKey, accounts.AccountRow] = Batcher(
            self._read, max_size, max_in_flight
        )

    async def find(self, key: AccountKey, deadline: float) -> accounts.AccountRow:
        """The wallet's row as accounts.find reads it (ACCOUNT_NOT_FOUND when
        there is none), read in the next batch."""
        answer = self._batcher.enqueue(key, deadline)
        return await until_deadline(answer, deadline)

    async def _read(self, batch: list[_Waiting]) -> None:
        metrics.READ_BATCH_SIZE.observe(len(batch))
        keys = [waiting.item for waiting in batch]
        deadline = max(waiting.deadline for waiting in batch)

        async def statement(connection: asyncpg.Connection) -> list[accounts.AccountRow | None]:
            return await accounts.find_many(connection, keys)

        try:
            rows = await run_transaction(self._pool, statement, deadline, appends_journal=False)
        except Exception as error:  # a read writes nothing: every reader gets the error
            for waiting in batch:
                waiting.settle(error=error)
            return
        for waiting, row in zip(batch, rows, strict=True):
            if row is None:
                waiting.settle(error=accounts.account_not_found(waiting.item))
            else:
                waiting.settle(row)
