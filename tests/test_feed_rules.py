"""The journal feed's pure rules, without processes: how far a read got, which
positions a caller may start from, the position's text form, and the
coalescing of NOTIFYs (pure asyncio)."""

from __future__ import annotations

import asyncio

import pytest

from ledger_client import format_position, parse_position, pb
from ledger_service.errors import LedgerError
from ledger_service.feed import (
    START,
    Coalesced,
    FeedEntry,
    Position,
    checked_position,
    reached_after,
)


def _entries(*positions: tuple[int, int]) -> list[FeedEntry]:
    # reached_after reads only the positions.
    return [FeedEntry(Position(*position), None) for position in positions]  # type: ignore[arg-type]


def test_a_full_page_reaches_its_last_entry_only():
    page = _entries((10, 1), (10, 2), (12, 3))
    # Rows below the horizon may follow the page: the feed is at its last entry.
    assert reached_after(START, page, page_size=3, horizon=50) == Position(12, 3)


def test_a_short_page_reaches_the_horizon():
    page = _entries((10, 1), (12, 3))
    # Every row below 50 was seen; the transaction at 50 is still running and
    # its rows (sequence >= 1) come after (50, 0).
    assert reached_after(START, page, page_size=3, horizon=50) == Position(50, 0)


def test_an_empty_page_never_moves_the_feed_back():
    assert reached_after(Position(60, 7), [], page_size=3, horizon=50) == Position(60, 7)
    assert reached_after(Position(40, 7), [], page_size=3, horizon=50) == Position(50, 0)


def test_positions_order_by_transaction_then_sequence():
    assert Position(5, 900) < Position(6, 1) < Position(6, 2)
    assert START < Position(1, 1)


def test_a_start_position_out_of_range_is_refused():
    assert checked_position(Position(2**63 - 1, 5)) == Position(2**63 - 1, 5)
    for wrong in (Position(-1, 0), Position(2**63, 0), Position(1, 2**63)):
        with pytest.raises(LedgerError) as refused:
            checked_position(wrong)
        assert refused.value.field == "after"


def test_a_position_survives_its_text_form():
    position = pb.JournalPosition(transaction_id=123_456_789_012, sequence=42)
    assert format_position(position) == "123456789012:42"
    assert parse_position(format_position(position)) == position
    assert parse_position(" 7:0\n") == pb.JournalPosition(transaction_id=7, sequence=0)


@pytest.mark.parametrize(
    "text", ["", "7", "7:", ":7", "a:1", "7:1:2", "-7:1", "7:1.5", f"{2**64}:1"]
)
def test_text_that_is_not_a_position_is_refused(text):
    with pytest.raises(ValueError):
        parse_position(text)


async def test_requests_while_a_call_is_in_flight_fold_into_one_next_call():
    calls = 0
    release = asyncio.Event()

    async def send() -> None:
        nonlocal calls
        calls += 1
        await release.wait()

    coalesced = Coalesced(send, min_interval=0)
    coalesced.request()
    await asyncio.sleep(0)
    assert calls == 1  # a lone request is sent at once
    for _ in range(50):
        coalesced.request()  # commits while the NOTIFY is in flight
    await asyncio.sleep(0)
    assert calls == 1  # never two at once
    release.set()
    for _ in range(5):
        await asyncio.sleep(0)
    assert calls == 2  # all fifty served by one more call
    await coalesced.close()


async def test_no_request_is_left_unserved():
    sent = asyncio.Event()

    async def send() -> None:
        sent.set()

    coalesced = Coalesced(send, min_interval=0.01)
    coalesced.request()
    await sent.wait()
    sent.clear()
    coalesced.request()  # during the pause after the first call
    await asyncio.wait_for(sent.wait(), timeout=5)
    await coalesced.close()
