"""Batching with no added latency, the one rule both hops share (the ledger's
group commit, the client's ApplyMovements sender): an item is sent at once
when fewer than `max_in_flight` batches are running, so batching never waits
for company; otherwise it waits for the first of them to finish and goes with
everything that queued meanwhile, up to `max_size`, in arrival order.

With `spread_by` (a key per item: the ledger's group commit gives the
customer), a burst is spread over the senders leaving at the same moment:
each takes its share of the queue, items of one key always together and in
arrival order, so the burst runs as parallel batches (PostgreSQL runs each
statement on one core) instead of one long one behind which the other slot
stays idle. The last sender leaving takes everything left.

`send(batch)` answers each item's future; an item whose caller gave up
(cancelled its future) before its batch left is never sent.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class Waiting(Generic[T, R]):
    item: T
    # Loop time by which its caller wants the answer.
    deadline: float
    answer: asyncio.Future[R]
    # Whatever the user of the batcher keeps with the item (a tracing span).
    extra: Any = None

    def settle(self, result: R | None = None, error: BaseException | None = None) -> None:
        """Answer the caller, unless it gave up already."""
        if self.answer.done():
            return
        if error is not None:
            self.answer.set_exception(error)
        else:
            self.answer.set_result(result)  # type: ignore[arg-type]


class Batcher(Generic[T, R]):
    def __init__(
        self,
        send: Callable[[list[Waiting[T, R]]], Awaitable[None]],
        max_size: int,
        max_in_flight: int,
        spread_by: Callable[[T], Hashable] | None = None,
    ) -> None:
        self._send = send
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._spread_by = spread_by
        self._queue: deque[Waiting[T, R]] = deque()
        self._in_flight = 0  # senders started and not ended
        self._sending = 0  # senders waiting for their batch's answer
        self._senders: set[asyncio.Task[None]] = set()

    def enqueue(self, item: T, deadline: float, extra: Any = None) -> asyncio.Future[R]:
        """Queue the item; its future is answered once its batch is."""
        answer: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append(Waiting(item, deadline, answer, extra))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            sender = asyncio.create_task(self._drain())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        return answer

    async def _drain(self) -> None:
        try:
            while batch := self._next_batch():
                self._sending += 1
                try:
                    await self._send(batch)
                finally:
                    self._sending -= 1
        finally:
            self._in_flight -= 1

    def _next_batch(self) -> list[Waiting[T, R]]:
        # Senders about to take from the queue now, this one included.
        leaving = self._in_flight - self._sending
        if self._spread_by is not None and leaving > 1:
            return self._share(leaving)
        # Alone (the usual case under load): take from the front and stop at
        # max_size; a share has to look at the whole queue.
        batch: list[Waiting[T, R]] = []
        while self._queue and len(batch) < self._max_size:
            waiting = self._queue.popleft()
            if not waiting.answer.done():
                batch.append(waiting)
        return batch

    def _share(self, leaving: int) -> list[Waiting[T, R]]:
        """One of `leaving` shares of the queue, by key; the rest stays queued
        in arrival order."""
        assert self._spread_by is not None
        batch: list[Waiting[T, R]] = []
        rest: deque[Waiting[T, R]] = deque()
        for waiting in self._queue:
            if waiting.answer.done():
                continue
            mine = hash(self._spread_by(waiting.item)) % leaving == 0
            if mine and len(batch) < self._max_size:
                batch.append(waiting)
            else:
                rest.append(waiting)
        self._queue = rest
        return batch
