"""`ledger reconcile` and `ledger export`: streamed, and right."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import pty
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from .conftest import ROOT, assert_books_balance, unique
from .ledger_calls import OPEN, adjust_request, cancel_request

BULK_COMPANY = 998
BULK_ENTRIES = 100_000


def _cli(target: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledger_service.operator_cli", "--target", target, *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


@pytest.fixture(scope="module")
async def bulk_wallet(db):
    """A wallet with 100,000 consistent journal entries, written straight in SQL."""
    customer = unique("bulk")
    async with db.acquire() as connection, connection.transaction():
        await connection.execute(
            """INSERT INTO accounts (company_id, customer, currency, digits, balance,
                                     funding_share, entry_count)
               VALUES ($1, $2, 'USD', 2, $3::bigint, -$3::bigint, $3::bigint)""",
            BULK_COMPANY,
            customer,
            BULK_ENTRIES,
        )
        await connection.execute(
            """INSERT INTO requests (company_id, customer, request_unique_no, kind, currency,
                                     outcome, amount, amount_digits, applied_amount, balance_after)
               SELECT $1, $2, 'bulk-' || g, 'deposit', 'USD', 'APPLIED', 1, 2, 1, g
               FROM generate_series(1, $3) g""",
            BULK_COMPANY,
            customer,
            BULK_ENTRIES,
        )
        await connection.execute(
            """INSERT INTO journal_entries (company_id, customer, currency, entry_no, amount,
                                            counterparty, balance_after, cause, request_unique_no)
               SELECT $1, $2, 'USD', g, 1, 'funding', g, 'deposit', 'bulk-' || g
               FROM generate_series(1, $3) g""",
            BULK_COMPANY,
            customer,
            BULK_ENTRIES,
        )
    async with db.acquire() as connection:  # what an operator does after a bulk load
        await connection.execute("ANALYZE accounts, requests, journal_entries")
    return customer


async def test_reconcile_passes_on_sound_books(
    ledger_server, ledger_stub, open_wallet, bulk_wallet
):
    wallet = await open_wallet(balance="50.00")
    execute = adjust_request(wallet, "5.00", OPEN)
    await ledger_stub.Adjust(execute)
    await ledger_stub.CancelAdjustment(cancel_request(wallet, execute.request_id, "5.00"))
    done = await asyncio.to_thread(_cli, ledger_server.target, "reconcile")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the books balance" in done.stdout
    only_bulk = await asyncio.to_thread(
        _cli, ledger_server.target, "reconcile", "--company-id", str(BULK_COMPANY)
    )
    assert f"{BULK_ENTRIES} journal entries" in only_bulk.stdout


async def test_reconcile_reports_a_tampered_balance_and_exits_non_zero(
    ledger_server, open_wallet, db
):
    wallet = await open_wallet(balance="50.00", company_id=997)
    where = "company_id = $1 AND customer = $2 AND currency = $3"
    key = (wallet.company_id, wallet.customer, wallet.currency)
    async with db.acquire() as connection:
        # The database itself refuses a balance that breaks conservation...
        with pytest.raises(asyncpg.CheckViolationError):
            await connection.execute(
                f"UPDATE accounts SET balance = balance + 1 WHERE {where}", *key
            )
        # ...so a tamperer moves a system account share too; the journal still tells.
        await connection.execute(
            f"UPDATE accounts SET balance = balance + 1, clearing_share = clearing_share - 1"
            f" WHERE {where}",
            *key,
        )
    try:
        found = await asyncio.to_thread(
            _cli, ledger_server.target, "reconcile", "--company-id", "997"
        )
    finally:
        async with db.acquire() as connection:
            await connection.execute(
                f"UPDATE accounts SET balance = balance - 1, clearing_share = clearing_share + 1"
                f" WHERE {where}",
                *key,
            )
    assert found.returncode == 1
    assert f"balance: 997/{wallet.customer}/USD: balance 51.00, journal sum 50.00" in found.stdout
    assert f"conservation: 997/{wallet.customer}/USD:" in found.stdout
    assert "2 discrepancies" in found.stderr


async def test_export_streams_a_period_as_csv(ledger_server, bulk_wallet, tmp_path):
    today = datetime.now(UTC).date()
    output = tmp_path / "journal.csv"
    done = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "export",
        "--company-id",
        str(BULK_COMPANY),
        "--from",
        str(today),
        "--to",
        str(today + timedelta(days=1)),
        "--output",
        str(output),
    )
    assert done.returncode == 0, done.stderr
    assert f"exported {BULK_ENTRIES} journal entries" in done.stdout
    with output.open(newline="") as exported:
        rows = list(csv.DictReader(exported))
    assert len(rows) == BULK_ENTRIES
    assert rows[0]["amount"] == "1.00" and rows[-1]["balance_after"] == f"{BULK_ENTRIES}.00"
    assert rows[0]["counterparty"] == "funding"
    assert [int(r["entry_no"]) for r in rows[:3]] == [1, 2, 3]

    empty = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "export",
        "--company-id",
        str(BULK_COMPANY),
        "--from",
        "2020-01-01",
        "--to",
        "2020-02-01",
    )
    assert empty.returncode == 0
    assert empty.stdout.splitlines() == [
        "company_id,customer,currency,entry_no,created_at,cause,operation_type,"
        "overtrading_policy,amount,counterparty,balance_after,request_unique_no,trace_id"
    ]


async def test_exposure_says_where_the_money_is_now_and_as_of_a_time(
    ledger_server, ledger_stub, open_wallet, db
):
    """Double entry: customers + clearing + funding = 0 per company and
    currency, now (from the wallets' shares) and as of a time (from the journal)."""
    company = 7_000 + datetime.now(UTC).microsecond
    first = await open_wallet(balance="100.00", company_id=company)
    second = await open_wallet(balance="50.00", company_id=company)
    before_trading = datetime.now(UTC)
    await asyncio.sleep(0.01)
    await ledger_stub.Adjust(adjust_request(first, "30.00", OPEN))  # margin to TradeBoss
    lost = adjust_request(second, "20.00", OPEN)
    await ledger_stub.Adjust(lost)
    await ledger_stub.CancelAdjustment(cancel_request(second, lost.request_id, "20.00"))

    now = await asyncio.to_thread(
        _cli, ledger_server.target, "exposure", "--company-id", str(company)
    )
    assert now.returncode == 0, now.stderr
    assert now.stdout.splitlines()[2].split() == [
        str(company),
        "USD",
        "2",
        "120.00",
        "0.00",
        "30.00",
        "-150.00",
    ]
    then = await asyncio.to_thread(
        _cli,
        ledger_server.target,
        "exposure",
        "--company-id",
        str(company),
        "--as-of",
        before_trading.isoformat(),
    )
    assert then.returncode == 0, then.stderr
    assert then.stdout.splitlines()[2].split() == [
        str(company),
        "USD",
        "2",
        "150.00",
        "0.00",
        "0.00",
        "-150.00",
    ]
    bad = await asyncio.to_thread(_cli, ledger_server.target, "exposure", "--as-of", "soon")
    assert bad.returncode == 2 and "not a date or time" in bad.stderr
    await assert_books_balance(db)


async def test_every_read_command_speaks_json(ledger_server, ledger_stub, open_wallet):
    wallet = await open_wallet(balance="10.00", company_id=8_000 + datetime.now(UTC).microsecond)
    execute = adjust_request(wallet, "2.50", OPEN)
    await ledger_stub.Adjust(execute)
    account = [
        "--company-id",
        str(wallet.company_id),
        "--customer",
        wallet.customer,
        "--currency",
        wallet.currency,
    ]
    runs = {
        "balance": ["balance", *account, "--json"],
        "statement": ["statement", *account, "--json"],
        "balance_then": ["balance", *account, "--as-of-entry", "1", "--json"],
        "statement_of": ["statement", *account, "--request", execute.request_id, "--json"],
        "request": ["request", *account, "--number", execute.request_id, "--json"],
        "exposure": ["exposure", "--company-id", str(wallet.company_id), "--json"],
        "reconcile": ["reconcile", "--company-id", str(wallet.company_id), "--json"],
    }
    read = {}
    for name, args in runs.items():
        done = await asyncio.to_thread(_cli, ledger_server.target, *args)
        assert done.returncode == 0, (name, done.stderr)
        read[name] = json.loads(done.stdout)
    assert read["balance"]["amount"] == "7.50"
    assert [e["amount"] for e in read["statement"]["entries"]] == ["-2.50", "10.00"]
    assert read["statement"]["entries"][0]["counterparty"] == "clearing"
    assert (read["balance_then"]["amount"], read["balance_then"]["entry_no"]) == ("10.00", 1)
    assert [e["amount"] for e in read["statement_of"]["entries"]] == ["-2.50"]
    assert read["request"]["adjust_result"] == "ADJUST_RESULT_APPLIED"
    assert read["exposure"]["exposures"][0]["customers"] == "7.50"
    assert read["reconcile"]["discrepancies"] == []


def test_export_and_reconcile_show_progress_on_a_terminal(ledger_server, bulk_wallet, tmp_path):
    """Rows done, rate and time left on stderr, only when it is a terminal."""
    today = datetime.now(UTC).date()
    command = [
        sys.executable,
        "-m",
        "ledger_service.operator_cli",
        "--target",
        ledger_server.target,
        "export",
        "--company-id",
        str(BULK_COMPANY),
        "--from",
        str(today),
        "--to",
        str(today + timedelta(days=1)),
        "--output",
        str(tmp_path / "out.csv"),
    ]
    controller, terminal = pty.openpty()
    try:
        done = subprocess.run(
            command, stderr=terminal, stdout=subprocess.PIPE, timeout=120, cwd=ROOT
        )
        os.close(terminal)
        shown = b""
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(controller)
    assert done.returncode == 0
    assert f"{BULK_ENTRIES:,} of {BULK_ENTRIES:,} journal entries".encode() in shown
    assert b"/s" in shown and b"left" in shown
    piped = subprocess.run(command, capture_output=True, timeout=120, cwd=ROOT)
    assert piped.returncode == 0 and b"journal entries," not in piped.stderr
