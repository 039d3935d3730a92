"""The journal feed for callers: every entry after a stored position, resumed
transparently when the ledger goes away (a restart, a replica stopping).

    async for item in watch_journal(stub, company_id=7, after=stored):
        handle(item.account, item.entry)
        stored = item.position          # keep it where the handling's result is kept

WatchJournal sends each entry once per stream, in the feed's order; a caller
that stores the position of what it processed and resumes after it gets
every entry at least once and never one before its stored position (exactly
once, when the handling and the position are stored together).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Sequence

import grpc

from .generated.ledger.v2 import ledger_pb2 as pb

# Statuses after which the same watch is simply opened again, from the last
# position: the ledger (or the way to it) is gone for now.
RESUMABLE = frozenset({grpc.StatusCode.UNAVAILABLE})


def format_position(position: pb.JournalPosition) -> str:
    """A position as text, "transaction_id:sequence" (what `ledger watch`
    prints and takes back in --after)."""
    return f"{position.transaction_id}:{position.sequence}"


def parse_position(text: str) -> pb.JournalPosition:
    """The position format_position wrote; ValueError for anything else."""
    transaction_id, colon, sequence = text.strip().partition(":")
    if not (colon and transaction_id.isdigit() and sequence.lstrip("-").isdigit()):
        raise ValueError(f"not a journal position (transaction_id:sequence): {text!r}")
    number, place = int(transaction_id), int(sequence)
    if number >= 2**64 or not -(2**63) <= place < 2**63:
        raise ValueError(f"journal position out of range: {text!r}")
    return pb.JournalPosition(transaction_id=number, sequence=place)


async def watch_journal(
    stub: object,
    company_id: int = 0,
    after: pb.JournalPosition | None = None,
    *,
    from_now: bool = False,
    metadata: Sequence[tuple[str, str]] | None = None,
    first_pause: float = 0.1,
    longest_pause: float = 5.0,
) -> AsyncIterator[pb.WatchedEntry]:
    """Every journal entry after `after` (None: from the journal's start, or
    from now with from_now=True), of one company or all (0), forever.

    When the stream breaks with a RESUMABLE status, it is opened again after
    the last entry yielded (or further, where the ledger said it had read to),
    after a pause that doubles from first_pause to longest_pause and starts
    again once the ledger answers. Any other status is raised.
    """
    position = after
    pause = first_pause
    while True:
        request = pb.WatchJournalRequest(company_id=company_id)
        if position is not None:
            request.after.CopyFrom(position)
        elif from_now:
            request.from_now = True
        call = stub.WatchJournal(request, metadata=metadata)  # type: ignore[attr-defined]
        try:
            async for response in call:
                pause = first_pause
                for item in response.entries:
                    yield item
                    position = item.position
                # Every entry of the response was handled: resume beyond them.
                position = response.position
        except grpc.aio.AioRpcError as error:
            if error.code() not in RESUMABLE:
                raise
        finally:
            call.cancel()
        await asyncio.sleep(pause * random.uniform(0.5, 1.0))
        pause = min(pause * 2, longest_pause)
