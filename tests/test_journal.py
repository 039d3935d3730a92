"""The journal: append-only, paginated newest first, and every request traceable."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest

from ledger_client import pb, result_name
from ledger_service.statuses import MovementStatus, TransferStatus

from .conftest import ROOT, fetch_once, release_before, unique
from .ledger_calls import OPEN, adjust_request, error_detail, outcome_of


async def test_journal_refuses_update_delete_and_truncate(db):
    async with db.acquire() as connection:
        for statement in (
            "UPDATE journal_entries SET amount = 0",
            "DELETE FROM journal_entries",
            "TRUNCATE journal_entries CASCADE",
        ):
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError, match="append-only"):
                await connection.execute(statement)


async def test_statement_pages_newest_first_without_gaps(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="100.00")
    for _ in range(6):
        await ledger_stub.Adjust(adjust_request(wallet, "1.00", OPEN))
    seen = []
    token = ""
    while True:
        page = await ledger_stub.ListJournalEntries(
            pb.ListJournalEntriesRequest(account=wallet.key, page_size=3, page_token=token)
        )
        seen.extend(page.entries)
        token = page.next_page_token
        if not token:
            break
    assert [entry.entry_no for entry in seen] == [7, 6, 5, 4, 3, 2, 1]
    assert seen[-1].cause == pb.ENTRY_CAUSE_DEPOSIT
    assert seen[0].cause == pb.ENTRY_CAUSE_ADJUSTMENT
    assert seen[0].balance_after == "94.00"


async def test_trace_travels_into_journal_and_request_record(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="10.00")
    request = adjust_request(wallet, "1.00", OPEN)
    trace = unique("trace")
    await ledger_stub.Adjust(request, metadata=(("trace", trace),))
    record = await ledger_stub.GetRequest(
        pb.GetRequestRequest(account=wallet.key, request_id=request.request_id)
    )
    assert record.request.trace_id == trace
    assert outcome_of(record.request) == "APPLIED"
    assert record.request.applied_amount == "-1.00"
    assert record.request.balance_after == "9.00"
    page = await ledger_stub.ListJournalEntries(
        pb.ListJournalEntriesRequest(account=wallet.key, page_size=1)
    )
    assert page.entries[0].trace_id == trace


async def test_unknown_request_and_bad_page_token(ledger_stub, open_wallet):
    wallet = await open_wallet(balance="0")
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await ledger_stub.GetRequest(
            pb.GetRequestRequest(account=wallet.key, request_id="never-seen")
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_detail(missing.value).reason == "REQUEST_NOT_FOUND"
    with pytest.raises(grpc.aio.AioRpcError) as bad_token:
        await ledger_stub.ListJournalEntries(
            pb.ListJournalEntriesRequest(account=wallet.key, page_token="abc")
        )
    assert error_detail(bad_token.value).field == "page_token"


async def test_the_sql_and_python_status_enums_are_one_list(db):
    """A typed contract between Python and SQL: the functions answer the
    PostgreSQL enum movement_status, which MovementStatus mirrors; a recorded
    outcome is a result or error reason of ledger.v2."""
    async with db.acquire() as connection:
        statuses = await connection.fetchval("SELECT enum_range(NULL::movement_status)::text[]")
        outcomes = await connection.fetchval("SELECT enum_range(NULL::request_outcome)::text[]")
    assert statuses == [status.value for status in MovementStatus]
    results = {
        result_name(enum, value)
        for enum in (pb.AdjustResult, pb.CancelResult, pb.DepositResult, pb.WithdrawResult)
        for value in enum.values()
    }
    assert set(outcomes) <= results
    assert set(outcomes) <= set(statuses)
    async with db.acquire() as connection:
        transfer_statuses = await connection.fetchval(
            "SELECT enum_range(NULL::transfer_status)::text[]"
        )
    assert transfer_statuses == [status.value for status in TransferStatus]


def test_every_sql_function_has_one_current_definition():
    """Functions live in ledger_service/functions/*.sql (re-applied on every
    migrate), and each is defined once. A numbered migration defines only the
    functions its own CHECK constraints call: they are part of the table."""
    package = ROOT / "ledger_service"
    defined: list[str] = []
    for path in sorted(package.rglob("*.sql")):
        sql = path.read_text()
        names = re.findall(r"CREATE\s+(?:OR\s+REPLACE\s+)?FUNCTION\s+(\w+)", sql, re.I)
        if path.parent.name != "functions":
            checks = set(re.findall(r"CHECK\s*\(\s*(\w+)\s*\(", sql, re.I))
            assert set(names) <= checks, f"{path} defines {names}"
        defined += names
    assert defined and len(defined) == len(set(defined)), defined


class _RolledBack(Exception):
    pass


@pytest.mark.parametrize(
    ("cause", "counterparty", "counterparty_customer", "fits"),
    [
        ("adjustment", "clearing", None, True),
        ("withdrawal", "funding", None, True),
        ("hold_expiry", None, "OTHER", True),
        ("adjustment", "funding", None, False),
        ("reversal", "clearing", "OTHER", False),
        ("deposit", "clearing", None, False),
        ("transfer", "clearing", "OTHER", False),
        ("hold", None, None, False),
        # No counterparty at all: the expression before migration 0007 was
        # NULL here, and a CHECK lets NULL pass.
        ("adjustment", None, None, False),
        ("deposit", None, None, False),
    ],
)
async def test_the_journal_refuses_an_entry_whose_other_side_does_not_fit_its_cause(
    db, open_wallet, cause, counterparty, counterparty_customer, fits
):
    wallet = await open_wallet()
    insert = """INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount,
                                             counterparty, counterparty_customer, balance_after,
                                             cause, request_unique_no)
                VALUES ($1, $2, $3, 1000000, 1, $4, $5, 1, $6, 'x')"""
    async with db.acquire() as connection:
        with pytest.raises(_RolledBack if fits else asyncpg.CheckViolationError):
            async with connection.transaction():
                await connection.execute(
                    insert,
                    wallet.company_id,
                    wallet.customer,
                    wallet.currency,
                    counterparty,
                    counterparty_customer,
                    cause,
                )
                raise _RolledBack  # a fitting entry is written, then undone


async def test_every_check_of_the_schema_holds_for_every_row(db):
    """A check added NOT VALID (to take its lock only for a moment) is then
    validated by a migration of its own."""
    async with db.acquire() as connection:
        unvalidated = await connection.fetch(
            "SELECT conrelid::regclass::text AS table_name, conname FROM pg_constraint"
            " WHERE NOT convalidated AND connamespace = 'public'::regnamespace"
        )
    assert [tuple(row) for row in unvalidated] == []


async def test_postings_of_every_entry_balance(db):
    """Every journal entry is a transfer: the wallet moves by amount, its
    company's clearing or funding account by -amount; per company and
    currency all accounts sum to zero (also checked by reconcile)."""
    async with db.acquire() as connection:
        unbalanced = await connection.fetchval(
            """SELECT count(*) FROM (
                   SELECT company_id, currency FROM accounts
                   GROUP BY 1, 2
                   HAVING sum(balance) + sum(clearing_share) + sum(funding_share) <> 0) t"""
        )
    assert unbalanced == 0


_ENTRY = """INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount,
                                     counterparty, balance_after, cause, request_unique_no)
            VALUES (1, 'C', 'USD', $1, 1, $2, 1, 'adjustment', 'x')"""


async def test_upgrading_to_the_counterparty_call_checks_the_entries_already_written(
    own_postgres,
):
    """Migration 0008 validates what was written before 0007: a journal that
    fits upgrades; one holding an entry the old check let through (no
    counterparty) stops the upgrade, naming the check, with 0007 already
    refusing new such entries."""
    from ledger_service import server

    async def journal_before_0007(name: str, *counterparties: str | None) -> str:
        """A database of its own at 0006: one wallet, an entry per counterparty."""
        admin = await asyncpg.connect(own_postgres.url)
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
        finally:
            await admin.close()
        url = urlunsplit(urlsplit(own_postgres.url)._replace(path="/" + name))
        with release_before("0007_"):
            await server.migrate(url)
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(
                "INSERT INTO accounts (company_id, customer, currency, digits)"
                " VALUES (1, 'C', 'USD', 2)"
            )
            for entry_no, counterparty in enumerate(counterparties, start=1):
                await connection.execute(_ENTRY, entry_no, counterparty)
        finally:
            await connection.close()
        return url

    fits = await journal_before_0007("fits", "clearing")
    await server.migrate(fits)
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch_once(fits, _ENTRY, 99, None)

    holds_one = await journal_before_0007("holds_one_without", "clearing", None)
    with pytest.raises(asyncpg.CheckViolationError, match="counterparty_of_cause"):
        await server.migrate(holds_one)
    applied = await fetch_once(holds_one, "SELECT name FROM schema_migrations ORDER BY version")
    assert applied[-1]["name"].startswith("0007_")
    # The query docs/deployment.md gives operators to find it.
    found = await fetch_once(
        holds_one,
        "SELECT entry_no FROM journal_entries"
        " WHERE NOT journal_counterparty_fits_cause(cause, counterparty, counterparty_customer)",
    )
    assert [row["entry_no"] for row in found] == [2]
    with pytest.raises(asyncpg.CheckViolationError):
        await fetch_once(holds_one, _ENTRY, 99, None)
