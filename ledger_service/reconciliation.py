"""Proving the books: reconciliation checks and the journal export, both
streamed from one consistent snapshot so millions of rows never sit in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

import asyncpg

from . import journal
from .model import AccountKey

# Each check yields the rows that break it, in one shape:
# (company_id, customer, currency, request_unique_no, entry_no, detail).
# $1 is a company id, 0 for every company.
CHECKS: dict[str, str] = {
    # balance = sum of the journal; entry_count = number of entries = last entry_no.
    "balance": """
        SELECT a.company_id, a.customer, a.currency, '' AS request_unique_no, 0::bigint AS entry_no,
               format('balance %s, journal sum %s, entry_count %s, entries %s, last entry %s',
                      round(a.balance, a.digits), round(coalesce(j.total, 0), a.digits),
                      a.entry_count,
                      coalesce(j.entries, 0), coalesce(j.last_no, 0)) AS detail
        FROM accounts a
        LEFT JOIN (SELECT company_id, customer, currency, sum(amount) AS total,
                          count(*) AS entries, max(entry_no) AS last_no
                   FROM journal_entries WHERE $1 = 0 OR company_id = $1
                   GROUP BY 1, 2, 3) j USING (company_id, customer, currency)
        WHERE ($1 = 0 OR a.company_id = $1)
          AND (a.balance <> coalesce(j.total, 0) OR a.entry_count <> coalesce(j.entries, 0)
               OR a.entry_count <> coalesce(j.last_no, 0))""",
    # Each entry's balance_after is the running sum of the entries up to it.
    "running_balance": """
        SELECT company_id, customer, currency, request_unique_no, entry_no,
               format('balance_after %s, running sum %s', trim_scale(balance_after),
                      trim_scale(running)) AS detail
        FROM (SELECT *, sum(amount) OVER (PARTITION BY company_id, customer, currency
                                          ORDER BY entry_no) AS running
              FROM journal_entries WHERE $1 = 0 OR company_id = $1) e
        WHERE balance_after <> running""",
    # Applied adjustments, deposits, withdrawals and reversing cancels have
    # exactly one entry under their number; every other request none.
    "entries_per_request": """
        SELECT r.company_id, r.customer, r.currency, r.request_unique_no, 0::bigint AS entry_no,
               format('%s %s has %s journal entries', r.kind, r.outcome, count(j.entry_no))
        FROM requests r
        LEFT JOIN journal_entries j
          ON j.company_id = r.company_id AND j.customer = r.customer
         AND j.currency = r.currency AND j.request_unique_no = r.request_unique_no
         AND j.cause IN ('adjustment', 'reversal', 'deposit', 'withdrawal')
        WHERE $1 = 0 OR r.company_id = $1
        GROUP BY r.company_id, r.customer, r.currency, r.request_unique_no, r.kind, r.outcome
        HAVING count(j.entry_no) <> CASE WHEN r.outcome IN ('APPLIED', 'REVERSED') THEN 1 ELSE 0 END""",
    # Double entry: each account's shares of its company's system accounts,
    # and of the transfers between its accounts, are the journal's entries
    # with them, and account + shares = 0.
    "conservation": """
        SELECT a.company_id, a.customer, a.currency, '' AS request_unique_no, 0::bigint AS entry_no,
               format('balance %s + clearing share %s + funding share %s + transfer share %s = %s; '
                      'journal: clearing %s, funding %s, transfers %s', round(a.balance, a.digits),
                      round(a.clearing_share, a.digits), round(a.funding_share, a.digits),
                      round(a.transfer_share, a.digits),
                      round(a.balance + a.clearing_share + a.funding_share + a.transfer_share,
                            a.digits),
                      round(coalesce(j.clearing, 0), a.digits),
                      round(coalesce(j.funding, 0), a.digits),
                      round(coalesce(j.transfers, 0), a.digits)) AS detail
        FROM accounts a
        LEFT JOIN (SELECT company_id, customer, currency,
                          -sum(amount) FILTER (WHERE counterparty = 'clearing') AS clearing,
                          -sum(amount) FILTER (WHERE counterparty = 'funding') AS funding,
                          -sum(amount) FILTER (WHERE counterparty_customer IS NOT NULL)
                              AS transfers
                   FROM journal_entries WHERE $1 = 0 OR company_id = $1
                   GROUP BY 1, 2, 3) j USING (company_id, customer, currency)
        WHERE ($1 = 0 OR a.company_id = $1)
          AND (a.balance + a.clearing_share + a.funding_share + a.transfer_share <> 0
               OR a.clearing_share <> coalesce(j.clearing, 0)
               OR a.funding_share <> coalesce(j.funding, 0)
               OR a.transfer_share <> coalesce(j.transfers, 0))""",
    # Every company and currency's accounts (wallets, internal accounts,
    # clearing, funding) sum to zero, and its transfers between accounts
    # created and destroyed nothing.
    "company_conservation": """
        SELECT company_id, '' AS customer, currency, '' AS request_unique_no, 0::bigint,
               format('accounts %s + clearing %s + funding %s = %s; transfer shares sum to %s',
                      trim_scale(accounts), trim_scale(clearing), trim_scale(funding),
                      trim_scale(accounts + clearing + funding), trim_scale(transfers))
        FROM (SELECT company_id, currency, sum(balance) AS accounts,
                     sum(clearing_share) AS clearing, sum(funding_share) AS funding,
                     sum(transfer_share) AS transfers
              FROM accounts WHERE $1 = 0 OR company_id = $1 GROUP BY 1, 2) t
        WHERE accounts + clearing + funding <> 0 OR transfers <> 0""",
    # What an account holds back is the sum of its open holds, and the
    # journal's hold entries add up to it.
    "held": """
        SELECT a.company_id, a.customer, a.currency, '' AS request_unique_no, 0::bigint,
               format('held %s, open holds %s, journal %s', trim_scale(a.held),
                      trim_scale(coalesce(h.open, 0)), trim_scale(coalesce(j.held, 0)))
        FROM accounts a
        LEFT JOIN (SELECT company_id, customer, currency, sum(amount) AS open FROM transfers
                   WHERE state = 'open' AND ($1 = 0 OR company_id = $1)
                   GROUP BY 1, 2, 3) h USING (company_id, customer, currency)
        LEFT JOIN (SELECT company_id, customer, currency, sum(held_change) AS held
                   FROM journal_entries WHERE $1 = 0 OR company_id = $1
                   GROUP BY 1, 2, 3) j USING (company_id, customer, currency)
        WHERE ($1 = 0 OR a.company_id = $1)
          AND (a.held <> coalesce(h.open, 0) OR a.held <> coalesce(j.held, 0))""",
    # A created transfer is two entries that sum to zero, the debit one of
    # -amount; a hold is one entry reserving its amount, and once closed one
    # releasing it whole, a post also crediting the posted amount. Nothing
    # else has entries.
    "transfer_entries": """
        WITH j AS MATERIALIZED (
            SELECT company_id,
                   CASE WHEN amount > 0 THEN counterparty_customer ELSE customer END
                       AS debtor,
                   request_unique_no,
                   string_agg(format('%s %s/%s', cause, trim_scale(amount),
                              trim_scale(held_change)), ', '
                       ORDER BY cause, amount)
                       AS shape,
                   count(*) FILTER (WHERE cause = 'transfer') AS transfers,
                   coalesce(sum(amount) FILTER (WHERE cause = 'transfer' AND amount < 0), 0) AS debited,
                   coalesce(sum(amount) FILTER (WHERE cause IN ('transfer', 'hold_post')), 0)
                       AS net,
                   count(*) FILTER (WHERE cause = 'hold') AS holds,
                   coalesce(sum(held_change) FILTER (WHERE cause = 'hold'), 0) AS reserved,
                   count(*) FILTER (WHERE cause IN ('hold_post', 'hold_void', 'hold_expiry')
                             AND held_change < 0) AS releases,
                   coalesce(sum(held_change), 0) AS held,
                   coalesce(sum(amount) FILTER (WHERE cause = 'hold_post' AND amount > 0), 0) AS posted,
                   count(*) FILTER (WHERE cause = 'hold_post') AS posts
            FROM journal_entries
            WHERE counterparty_customer IS NOT NULL AND ($1 = 0 OR company_id = $1)
            GROUP BY 1, 2, 3)
        SELECT t.company_id, t.customer, t.currency, t.transfer_id, 0::bigint,
               format('%s %s %s of %s: entries %s', t.kind, t.result, coalesce(t.state::text, ''),
                      trim_scale(t.amount), coalesce(j.shape, 'none'))
        FROM transfers t
        LEFT JOIN j
          ON j.company_id = t.company_id AND j.debtor = t.customer
         AND j.request_unique_no = t.transfer_id
        WHERE ($1 = 0 OR t.company_id = $1) AND NOT coalesce(
            CASE
              WHEN t.result <> 'CREATED' THEN j.debtor IS NULL
              WHEN t.kind = 'transfer' THEN
                   j.transfers = 2 AND j.debited = -t.amount AND j.net = 0 AND j.holds = 0
                   AND j.posts = 0
              ELSE j.transfers = 0 AND j.holds = 1 AND j.reserved = t.amount AND j.net = 0
                   AND CASE WHEN t.state = 'open' THEN j.releases = 0 AND j.held = t.amount
                            ELSE j.releases = 1 AND j.held = 0 END
                   AND CASE WHEN t.state = 'posted' THEN j.posts = 2 AND j.posted = t.posted_amount
                            ELSE j.posts = 0 END
            END, false)""",
    # An entry without its request record would be a half-applied request.
    "orphan_entry": """
        SELECT j.company_id, j.customer, j.currency, j.request_unique_no, j.entry_no,
               format('%s entry of %s has no request record', j.cause, trim_scale(j.amount))
        FROM journal_entries j
        LEFT JOIN requests r
          ON r.company_id = j.company_id AND r.customer = j.customer
         AND r.request_unique_no = j.request_unique_no
        WHERE ($1 = 0 OR j.company_id = $1) AND j.counterparty_customer IS NULL
          AND r.request_unique_no IS NULL""",
    # An entry with another account names a transfer or hold of the debit
    # account's customer (the customer, or the other side for a credit).
    "orphan_transfer_entry": """
        WITH t AS MATERIALIZED (
            SELECT company_id, customer, transfer_id, currency FROM transfers
            WHERE $1 = 0 OR company_id = $1)
        SELECT j.company_id, j.customer, j.currency, j.request_unique_no, j.entry_no,
               format('%s entry of %s has no transfer record', j.cause, trim_scale(j.amount))
        FROM journal_entries j
        LEFT JOIN t
          ON t.company_id = j.company_id AND t.transfer_id = j.request_unique_no
         AND t.customer = CASE WHEN j.amount > 0 THEN j.counterparty_customer ELSE j.customer END
         AND t.currency = j.currency
        WHERE ($1 = 0 OR j.company_id = $1) AND j.counterparty_customer IS NOT NULL
          AND t.transfer_id IS NULL""",
    # A reversed adjustment names the cancel that reversed it, and that cancel
    # says REVERSED and names it back.
    "reversal_link": """
        SELECT a.company_id, a.customer, a.currency, a.request_unique_no, 0::bigint,
               format('reversed_by %s, but that cancel is %s', a.reversed_by,
                      coalesce(c.outcome || ' naming ' || c.reverse_request_unique_no, 'missing'))
        FROM requests a
        LEFT JOIN requests c
          ON c.company_id = a.company_id AND c.customer = a.customer
         AND c.request_unique_no = a.reversed_by
        WHERE ($1 = 0 OR a.company_id = $1) AND a.reversed_by IS NOT NULL
          AND (c.request_unique_no IS NULL OR c.outcome <> 'REVERSED'
               OR c.reverse_request_unique_no <> a.request_unique_no)""",
}

_COUNTS = """
SELECT (SELECT count(*) FROM accounts WHERE $1 = 0 OR company_id = $1),
       (SELECT count(*) FROM journal_entries WHERE $1 = 0 OR company_id = $1),
       (SELECT count(*) FROM requests WHERE $1 = 0 OR company_id = $1)"""

_EXPORT = f"""
SELECT j.company_id, j.customer, j.currency, a.digits, {journal.ENTRY_COLUMNS}
FROM journal_entries j JOIN accounts a USING (company_id, customer, currency)
WHERE j.created_at >= $1 AND j.created_at < $2 AND ($3 = 0 OR j.company_id = $3)
ORDER BY j.created_at, j.company_id, j.customer, j.currency, j.entry_no"""

_PREFETCH = 1000


@dataclass(frozen=True)
class Discrepancy:
    check: str
    account: AccountKey
    request_unique_no: str
    entry_no: int
    detail: str


@dataclass(frozen=True)
class Progress:
    checks_done: int
    checks_total: int


@dataclass(frozen=True)
class Summary:
    accounts: int
    entries: int
    requests: int
    discrepancies: int


async def reconcile(
    pool: asyncpg.Pool, company_id: int
) -> AsyncIterator[Discrepancy | Progress | Summary]:
    """Yield every discrepancy and a Progress after each check, then one Summary."""
    found = 0
    async with pool.acquire() as connection, _snapshot(connection):
        counts = await connection.fetchrow(_COUNTS, company_id)
        assert counts is not None
        accounts, entries, requests = counts
        for done, (check, query) in enumerate(CHECKS.items(), start=1):
            async for row in connection.cursor(query, company_id, prefetch=_PREFETCH):
                found += 1
                yield Discrepancy(check, AccountKey(row[0], row[1], row[2]), row[3], row[4], row[5])
            yield Progress(done, len(CHECKS))
    yield Summary(accounts, entries, requests, found)


_EXPORT_COUNT = """
SELECT count(*) FROM journal_entries
WHERE created_at >= $1 AND created_at < $2 AND ($3 = 0 OR company_id = $3)"""


async def export_journal(
    pool: asyncpg.Pool, from_time: datetime, to_time: datetime, company_id: int
) -> AsyncIterator[int | journal.AccountEntry]:
    """First the number of entries, then each entry, all from one snapshot."""
    async with pool.acquire() as connection, _snapshot(connection):
        yield await connection.fetchval(_EXPORT_COUNT, from_time, to_time, company_id)
        async for row in connection.cursor(
            _EXPORT, from_time, to_time, company_id, prefetch=_PREFETCH
        ):
            yield journal.AccountEntry(
                AccountKey(row["company_id"], row["customer"], row["currency"]),
                row["digits"],
                journal.Entry.of(row),
            )


def _snapshot(connection: asyncpg.pool.PoolConnectionProxy) -> asyncpg.transaction.Transaction:
    """Every query of a run sees the same committed state, whatever commits meanwhile."""
    return connection.transaction(isolation="repeatable_read", readonly=True)


# Per company and currency: what its customers hold and where it sits. Now
# from the wallets' rows (the shares the transactions keep); as of a time,
# from the journal (every transfer up to it).
_EXPOSURE_NOW = """
SELECT company_id, currency, max(digits) AS digits,
       count(*) FILTER (WHERE kind = 'wallet') AS wallets,
       coalesce(sum(balance) FILTER (WHERE kind = 'wallet'), 0) AS customers,
       coalesce(sum(balance) FILTER (WHERE kind = 'internal'), 0) AS internal,
       sum(clearing_share) AS clearing, sum(funding_share) AS funding
FROM accounts WHERE $1 = 0 OR company_id = $1
GROUP BY 1, 2 ORDER BY 1, 2"""

_EXPOSURE_AS_OF = """
SELECT a.company_id, a.currency, max(a.digits) AS digits,
       count(DISTINCT a.customer) FILTER (WHERE a.kind = 'wallet') AS wallets,
       coalesce(sum(j.amount) FILTER (WHERE a.kind = 'wallet'), 0) AS customers,
       coalesce(sum(j.amount) FILTER (WHERE a.kind = 'internal'), 0) AS internal,
       coalesce(-sum(j.amount) FILTER (WHERE j.counterparty = 'clearing'), 0) AS clearing,
       coalesce(-sum(j.amount) FILTER (WHERE j.counterparty = 'funding'), 0) AS funding
FROM accounts a
LEFT JOIN journal_entries j
  ON j.company_id = a.company_id AND j.customer = a.customer AND j.currency = a.currency
 AND j.created_at <= $2
WHERE ($1 = 0 OR a.company_id = $1) AND a.created_at <= $2
GROUP BY 1, 2 ORDER BY 1, 2"""


@dataclass(frozen=True)
class Exposure:
    """One company and currency: customers' holdings, internal accounts'
    (fees, bonuses...), and the system accounts (negative: what they paid
    out). customers + internal + clearing + funding = 0."""

    company_id: int
    currency: str
    digits: int
    wallets: int
    customers: Decimal
    internal: Decimal
    clearing: Decimal
    funding: Decimal


async def exposure(pool: asyncpg.Pool, company_id: int, as_of: datetime | None) -> list[Exposure]:
    async with pool.acquire() as connection, _snapshot(connection):
        if as_of is None:
            rows = await connection.fetch(_EXPOSURE_NOW, company_id)
        else:
            rows = await connection.fetch(_EXPOSURE_AS_OF, company_id, as_of)
    return [Exposure(**dict(row)) for row in rows]
