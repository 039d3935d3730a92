"""The batching rule both hops share (ledger_client/batching.py), in pure
asyncio: a lone item leaves at once, items that queue while the slots are busy
leave together in arrival order, up to max_size; an item whose caller gave up
never leaves; with spread_by, a burst leaves as parallel batches, each key's
items together."""

from __future__ import annotations

import asyncio

from ledger_client.batching import Batcher, Waiting


class _Sender:
    """Records each batch and answers it when released."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()

    async def __call__(self, batch: list[Waiting[int, int]]) -> None:
        self.batches.append([waiting.item for waiting in batch])
        await self.release.wait()
        for waiting in batch:
            waiting.settle(waiting.item * 10)


async def test_a_lone_item_leaves_at_once_and_the_queue_goes_together() -> None:
    sender = _Sender()
    batcher: Batcher[int, int] = Batcher(sender, max_size=3, max_in_flight=1)
    first = batcher.enqueue(1, 0.0)
    await asyncio.sleep(0)
    assert sender.batches == [[1]]  # sent without waiting for company
    rest = [batcher.enqueue(item, 0.0) for item in (2, 3, 4, 5, 6)]
    rest[2].cancel()  # item 4's caller gives up while queued
    await asyncio.sleep(0)
    assert sender.batches == [[1]]  # the only slot is busy: the others queue
    sender.release.set()
    answers = await asyncio.gather(first, *(f for f in rest if not f.cancelled()))
    assert answers == [10, 20, 30, 50, 60]
    assert sender.batches == [[1], [2, 3, 5], [6]]  # arrival order, at most 3, 4 never sent


async def test_free_slots_send_in_parallel() -> None:
    sender = _Sender()
    batcher: Batcher[int, int] = Batcher(sender, max_size=10, max_in_flight=2)
    futures = [batcher.enqueue(1, 0.0)]
    await asyncio.sleep(0)
    futures.append(batcher.enqueue(2, 0.0))
    await asyncio.sleep(0)
    futures += [batcher.enqueue(item, 0.0) for item in (3, 4)]
    await asyncio.sleep(0)
    assert sender.batches == [[1], [2]]
    sender.release.set()
    assert await asyncio.gather(*futures) == [10, 20, 30, 40]
    assert sender.batches[2:] == [[3, 4]]


async def test_a_burst_spreads_over_the_free_slots_by_key() -> None:
    sender = _Sender()
    batcher: Batcher[int, int] = Batcher(
        sender, max_size=10, max_in_flight=2, spread_by=lambda item: item // 10
    )
    items = [10, 20, 11, 21, 30, 31, 40]  # key: the tens
    # One burst: both slots start a sender before either has taken anything.
    futures = [batcher.enqueue(item, 0.0) for item in items]
    await asyncio.sleep(0)
    assert len(sender.batches) == 2, "the burst should leave as two batches at once"
    assert sorted(item for batch in sender.batches for item in batch) == sorted(items)
    for batch in sender.batches:
        assert batch == sorted(batch, key=items.index)  # arrival order inside each
    first, second = ({item // 10 for item in batch} for batch in sender.batches)
    assert not first & second  # a key's items leave together
    sender.release.set()
    assert await asyncio.gather(*futures) == [item * 10 for item in items]


async def test_a_share_with_nothing_in_it_leaves_the_queue_to_the_last_sender() -> None:
    sender = _Sender()
    batcher: Batcher[int, int] = Batcher(
        sender, max_size=10, max_in_flight=2, spread_by=lambda item: 1
    )
    futures = [batcher.enqueue(item, 0.0) for item in (1, 2, 3)]
    await asyncio.sleep(0)
    sender.release.set()
    assert await asyncio.gather(*futures) == [10, 20, 30]
    assert sender.batches == [[1, 2, 3]]  # one key: one batch, no empty one sent
