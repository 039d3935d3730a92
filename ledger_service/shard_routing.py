"""Which worker holds a wallet, so that group commit puts only wallets of one
worker in a batch: a batch is then one call delegated whole to that worker
(ledger_apply_batch, routed by p_routing_customer), never a multi-shard
statement.

Citus places a row by the 32-bit hash of its distribution value
(PostgreSQL's `hashtext` for a text column) into the shard whose hash range
holds it. `text_hash` is that function in Python, so routing costs no round
trip; the ranges and the node of each shard are read from Citus' catalog at
start and again every REFRESH_SECONDS (a rebalance moves shards). A map that
is out of date costs speed, never correctness: the worker then reaches the
moved shard itself, inside the same transaction.

On a plain PostgreSQL (LEDGER_DISTRIBUTED unset) there is one range and one
group, and group commit behaves as it always did.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from dataclasses import dataclass, field

import asyncpg

from .distribution import COLOCATION_ANCHOR

log = logging.getLogger(__name__)

REFRESH_SECONDS = 30.0

_MASK = 0xFFFFFFFF

# Every shard of the anchor table: its hash range and the group (node) that holds it.
_PLACEMENTS = f"""
SELECT s.shardminvalue::integer AS min_hash, p.groupid
FROM pg_dist_shard s JOIN pg_dist_placement p USING (shardid)
WHERE s.logicalrelid = '{COLOCATION_ANCHOR}'::regclass
ORDER BY 1"""


def _rot(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK


def _mix(a: int, b: int, c: int) -> tuple[int, int, int]:
    a = (a - c) & _MASK
    a ^= _rot(c, 4)
    c = (c + b) & _MASK
    b = (b - a) & _MASK
    b ^= _rot(a, 6)
    a = (a + c) & _MASK
    c = (c - b) & _MASK
    c ^= _rot(b, 8)
    b = (b + a) & _MASK
    a = (a - c) & _MASK
    a ^= _rot(c, 16)
    c = (c + b) & _MASK
    b = (b - a) & _MASK
    b ^= _rot(a, 19)
    a = (a + c) & _MASK
    c = (c - b) & _MASK
    c ^= _rot(b, 4)
    b = (b + a) & _MASK
    return a, b, c


def _final(a: int, b: int, c: int) -> int:
    c ^= b
    c = (c - _rot(b, 14)) & _MASK
    a ^= c
    a = (a - _rot(c, 11)) & _MASK
    b ^= a
    b = (b - _rot(a, 25)) & _MASK
    c ^= b
    c = (c - _rot(b, 16)) & _MASK
    a ^= c
    a = (a - _rot(c, 4)) & _MASK
    b ^= a
    b = (b - _rot(a, 14)) & _MASK
    c ^= b
    c = (c - _rot(b, 24)) & _MASK
    return c


def text_hash(value: str) -> int:
    """PostgreSQL's hashtext(value) (hash_bytes of src/common/hashfn.c, Bob
    Jenkins' lookup3, little-endian) for a deterministic collation."""
    data = value.encode()
    length = len(data)
    a = b = c = (0x9E3779B9 + length + 3923095) & _MASK
    offset = 0
    while length - offset >= 12:
        a = (a + int.from_bytes(data[offset : offset + 4], "little")) & _MASK
        b = (b + int.from_bytes(data[offset + 4 : offset + 8], "little")) & _MASK
        c = (c + int.from_bytes(data[offset + 8 : offset + 12], "little")) & _MASK
        a, b, c = _mix(a, b, c)
        offset += 12
    tail = data[offset:]
    # The lowest byte of c is left for the length (already added above).
    a = (a + int.from_bytes(tail[0:4], "little")) & _MASK
    b = (b + int.from_bytes(tail[4:8], "little")) & _MASK
    c = (c + (int.from_bytes(tail[8:11], "little") << 8)) & _MASK
    hashed = _final(a, b, c)
    return hashed - (1 << 32) if hashed >= 1 << 31 else hashed


@dataclass
class ShardMap:
    """Hash ranges (by their lower bounds) and the group holding each."""

    lower_bounds: list[int] = field(default_factory=lambda: [-(1 << 31)])
    groups: list[int] = field(default_factory=lambda: [0])
    loaded_at: float = field(default_factory=time.monotonic)

    def group_of(self, customer: str) -> int:
        if len(self.groups) == 1:
            return self.groups[0]
        index = bisect.bisect_right(self.lower_bounds, text_hash(customer)) - 1
        return self.groups[index]

    @property
    def stale(self) -> bool:
        return time.monotonic() - self.loaded_at > REFRESH_SECONDS


async def load(pool: asyncpg.Pool, distributed: bool) -> ShardMap:
    """Where each shard of the wallets is now; one group when not distributed."""
    if not distributed:
        return ShardMap()
    async with pool.acquire() as connection:
        rows = await connection.fetch(_PLACEMENTS)
    return ShardMap([row["min_hash"] for row in rows], [row["groupid"] for row in rows])


class ShardRouter:
    """The current map, re-read in the background once it is REFRESH_SECONDS old."""

    def __init__(self, pool: asyncpg.Pool, distributed: bool, shard_map: ShardMap) -> None:
        self._pool = pool
        self._distributed = distributed
        self._map = shard_map
        self._refreshing: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, pool: asyncpg.Pool, distributed: bool) -> ShardRouter:
        return cls(pool, distributed, await load(pool, distributed))

    def group_of(self, customer: str) -> int:
        if self._distributed and self._map.stale and self._refreshing is None:
            self._refreshing = asyncio.create_task(self._refresh())
        return self._map.group_of(customer)

    async def _refresh(self) -> None:
        try:
            self._map = await load(self._pool, self._distributed)
        except (OSError, asyncpg.PostgresError) as error:
            # Keep routing by the old map; the next call tries again.
            log.warning("could not re-read the shard map: %r", error)
            self._map.loaded_at = time.monotonic()
        finally:
            self._refreshing = None
