"""The accounts table: opening wallets, reading and locking balances."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import asyncpg

from . import validation
from .database import fetch_one, run_transaction
from .errors import LedgerError
from .model import AccountKey, Balance
from .outcomes import Outcome
from .statuses import MovementStatus

if TYPE_CHECKING:
    from .balance_reads import BalanceReads

_INSERT = """
INSERT INTO accounts (company_id, customer, currency, digits, user_name, kind, allow_negative)
VALUES ($1, $2, $3, $4, NULLIF($5, ''), $6, $7)
ON CONFLICT (company_id, customer, currency) DO NOTHING
RETURNING balance"""

_SELECT = """
SELECT digits, coalesce(user_name, '') AS user_name, balance, held, entry_count, kind,
       allow_negative
FROM accounts
WHERE company_id = $1 AND customer = $2 AND currency = $3"""

_LOCK = _SELECT + " FOR UPDATE"

# _SELECT for many wallets at once: one row per key, in the keys' order.
_SELECT_MANY = """
SELECT a.digits, coalesce(a.user_name, '') AS user_name, a.balance, a.held, a.entry_count,
       a.kind, a.allow_negative, a.company_id IS NOT NULL AS found
FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY
     AS k(company_id, customer, currency, position)
LEFT JOIN accounts a USING (company_id, customer, currency)
ORDER BY k.position"""

_REBIND_USER_NAME = """SELECT * FROM ledger_rebind_user_name(
    p_company_id => $1, p_customer => $2, p_currency => $3, p_user_name => $4,
    p_reason => $5, p_operator => $6, p_trace_id => $7)"""

_BIND_USER_NAME = """
UPDATE accounts SET user_name = $4
WHERE company_id = $1 AND customer = $2 AND currency = $3 AND user_name IS NULL"""


@dataclass(frozen=True)
class AccountRow:
    key: AccountKey
    digits: int
    user_name: str
    balance: Decimal
    # The number of its newest journal entry (0: none yet).
    entry_count: int
    held: Decimal = Decimal(0)
    # 'wallet' (a TradeBoss customer's) or 'internal' (a service's).
    kind: str = "wallet"
    allow_negative: bool = False

    def as_balance(self, amount: Decimal | None = None) -> Balance:
        """Now, or (amount given: a past balance) as it was, held not known."""
        if amount is not None:
            return Balance(self.key, amount, self.digits, self.user_name)
        return Balance(self.key, self.balance, self.digits, self.user_name, self.held)


def _key_args(key: AccountKey) -> tuple[int, str, str]:
    return key.company_id, key.customer, key.currency


async def insert(
    connection: asyncpg.Connection,
    key: AccountKey,
    digits: int,
    user_name: str,
    kind: str = "wallet",
    allow_negative: bool = False,
) -> bool:
    """Create the account; False when it already exists."""
    created = await connection.fetchval(
        _INSERT, *_key_args(key), digits, user_name, kind, allow_negative
    )
    return created is not None


async def find(connection: asyncpg.Connection, key: AccountKey) -> AccountRow:
    row = await connection.fetchrow(_SELECT, *_key_args(key))
    return _to_account(key, row)


async def find_many(
    connection: asyncpg.Connection, keys: list[AccountKey]
) -> list[AccountRow | None]:
    """find for each key in one statement; None where there is no account."""
    columns = (
        [key.company_id for key in keys],
        [key.customer for key in keys],
        [key.currency for key in keys],
    )
    rows = await connection.fetch(_SELECT_MANY, *columns)
    return [
        _to_account(key, row) if row["found"] else None for key, row in zip(keys, rows, strict=True)
    ]


async def lock(connection: asyncpg.Connection, key: AccountKey) -> AccountRow:
    """Lock the wallet's row for the rest of the transaction."""
    row = await connection.fetchrow(_LOCK, *_key_args(key))
    return _to_account(key, row)


def _to_account(key: AccountKey, row: asyncpg.Record | None) -> AccountRow:
    if row is None:
        raise account_not_found(key)
    return AccountRow(
        key,
        row["digits"],
        row["user_name"],
        row["balance"],
        row["entry_count"],
        row["held"],
        row["kind"],
        row["allow_negative"],
    )


def account_not_found(key: AccountKey) -> LedgerError:
    return LedgerError(
        Outcome.ACCOUNT_NOT_FOUND,
        f"no wallet for company {key.company_id}, customer {key.customer!r}, "
        f"currency {key.currency!r}",
        "customer",
    )


def user_name_mismatch() -> LedgerError:
    return LedgerError(
        Outcome.USER_NAME_MISMATCH, "the wallet belongs to another userName", "user_name"
    )


async def check_user_name(
    connection: asyncpg.Connection, account: AccountRow, user_name: str
) -> AccountRow:
    """The first userName a wallet sees binds it; every later one must match."""
    if not user_name or user_name == account.user_name:
        return account
    if account.user_name:
        raise user_name_mismatch()
    await connection.execute(_BIND_USER_NAME, *_key_args(account.key), user_name)
    return dataclasses.replace(account, user_name=user_name)


async def open_account(
    pool: asyncpg.Pool,
    key: AccountKey,
    digits: int,
    user_name: str,
    deadline: float,
    *,
    internal: bool = False,
    allow_negative: bool = False,
) -> tuple[bool, Balance]:
    """Open a wallet, or an internal account (allow_negative: transfers may
    take it below zero); opening it again the same way is idempotent."""
    validation.account_key(key)
    validation.new_currency(key.currency)
    validation.digits(digits, "digits")
    validation.text(user_name, "user_name", validation.MAX_USER_NAME, required=False)
    kind = "internal" if internal else "wallet"
    if allow_negative and not internal:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, "only an internal account may go negative", "allow_negative"
        )
    if internal and user_name:
        raise LedgerError(
            Outcome.INVALID_ARGUMENT, "an internal account has no TradeBoss userName", "user_name"
        )

    async def transaction(connection: asyncpg.Connection) -> tuple[bool, Balance]:
        async with connection.transaction():
            created = await insert(connection, key, digits, user_name, kind, allow_negative)
            account = await lock(connection, key)
            if account.digits != digits:
                raise LedgerError(
                    Outcome.ACCOUNT_SCALE_MISMATCH,
                    f"the wallet exists with {account.digits} digits, not {digits}",
                    "digits",
                )
            if (account.kind, account.allow_negative) != (kind, allow_negative):
                raise LedgerError(
                    Outcome.ACCOUNT_SCALE_MISMATCH,
                    f"the account exists as {account.kind}"
                    + (" allowed to go negative" if account.allow_negative else ""),
                    "kind",
                )
            account = await check_user_name(connection, account, user_name)
            return created, account.as_balance()

    return await run_transaction(pool, transaction, deadline, appends_journal=False)


async def get_balance(
    pool: asyncpg.Pool,
    key: AccountKey,
    user_name: str,
    deadline: float,
    reads: BalanceReads | None = None,
) -> tuple[Balance, int]:
    """The wallet's balance now and its newest entry's number; a user_name
    binds the wallet on first use and must match afterwards. With `reads`,
    the row is read in a batch with other reads (balance_reads.py)."""
    validation.account_key(key)
    validation.text(user_name, "user_name", validation.MAX_USER_NAME, required=False)
    if reads is not None:
        row = await reads.find(key, deadline)
        if not user_name or (row.kind == "wallet" and row.user_name == user_name):
            return row.as_balance(), row.entry_count
        # A name to bind or to refuse: the transaction below decides.

    async def transaction(connection: asyncpg.Connection) -> tuple[Balance, int]:
        account = await find(connection, key)
        if user_name and account.kind != "wallet":
            raise account_not_found(key)  # TradeBoss sees wallets only
        if user_name and not account.user_name:
            async with connection.transaction():
                account = await check_user_name(connection, await lock(connection, key), user_name)
        elif user_name and user_name != account.user_name:
            await check_user_name(connection, account, user_name)
        return account.as_balance(), account.entry_count

    return await run_transaction(pool, transaction, deadline, appends_journal=False)


async def rebind_user_name(
    pool: asyncpg.Pool,
    key: AccountKey,
    user_name: str,
    reason: str,
    operator: str,
    trace_id: str,
    deadline: float,
) -> tuple[Balance, str]:
    """An operator binds the wallet to another userName; the operator actions
    log keeps who, why, and the name before. Returns the wallet and that name."""
    validation.account_key(key)
    validation.text(user_name, "user_name", validation.MAX_USER_NAME)
    validation.text(reason, "reason", validation.MAX_REMARK)
    validation.text(operator, "operator", validation.MAX_CUSTOMER)

    async def transaction(connection: asyncpg.Connection) -> asyncpg.Record:
        return await fetch_one(
            connection,
            _REBIND_USER_NAME,
            *_key_args(key),
            user_name,
            reason,
            operator,
            trace_id,
        )

    row = await run_transaction(pool, transaction, deadline, appends_journal=False)
    if MovementStatus(row["status"]) is MovementStatus.ACCOUNT_NOT_FOUND:
        raise account_not_found(key)
    return Balance(key, row["balance"], row["digits"], user_name), row["previous_user_name"] or ""
