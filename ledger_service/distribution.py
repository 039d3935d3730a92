"""Scale-out on Citus: the one place that knows the ledger can be distributed
(`ledger-service migrate --distributed`, LEDGER_DISTRIBUTED=true).

On a Citus coordinator whose workers are registered, after the numbered
migrations, every account-scoped table is distributed by the account key and
co-located with `accounts`, so one wallet's rows (account, journal, requests,
operator actions) sit in one shard; the money-moving functions are distributed
by their customer argument, so Citus sends each call whole to the worker that
holds that shard (docs/scaling.md). The same migrations run on a plain
PostgreSQL; these steps are only taken when the setting asks for them.

Why `customer`: Citus shards by one column. company_id has few values and one
big company would be one hot shard; currency has a handful. customer has
TradeBoss's whole user base, is in every primary key and in the WHERE clause
of every hot-path statement, and request numbers are scoped to it (the primary
key of `requests` is (company_id, customer, request_unique_no)), so "exactly
once" stays a single-shard check. Two companies' customers of the same name
share a shard, which is harmless.
"""

from __future__ import annotations

import logging

import asyncpg

log = logging.getLogger(__name__)

ACCOUNT_KEY = "customer"

# (table, distribution column): every account-scoped table. The first is the
# one the others (and the functions) are co-located with. A new table is one
# line here.
DISTRIBUTED_TABLES: tuple[tuple[str, str], ...] = (
    ("accounts", ACCOUNT_KEY),
    ("journal_entries", ACCOUNT_KEY),
    ("requests", ACCOUNT_KEY),
    ("operator_actions", ACCOUNT_KEY),
    # Keyed by the debit account's customer; a transfer between two
    # customers is a multi-shard transaction (docs/scaling.md).
    ("transfers", ACCOUNT_KEY),
)
COLOCATION_ANCHOR = DISTRIBUTED_TABLES[0][0]

# Small tables every shard may join with (settings, currencies): copied to
# every node. None yet; schema_migrations stays on the coordinator, where
# only migrate reads it.
REFERENCE_TABLES: tuple[str, ...] = ()

# (function, argument whose value picks the shard): each call is delegated to
# the worker holding that value's shard. ledger_apply_batch is routed by
# p_routing_customer: group commit puts only movements of wallets on one
# worker in a batch (shard_routing.py).
DELEGATED_FUNCTIONS: tuple[tuple[str, str], ...] = (
    ("ledger_adjust", "p_customer"),
    ("ledger_cancel", "p_customer"),
    ("ledger_apply_batch", "p_routing_customer"),
    ("ledger_fund", "p_customer"),
    ("ledger_rebind_user_name", "p_customer"),
)

# The append-only triggers (functions/00_append_only.sql) only raise, so they
# are safe on shards; Citus refuses triggers on distributed tables without
# this.
_SESSION = "SET citus.enable_unsafe_triggers TO on"


async def prepare_session(connection: asyncpg.Connection) -> None:
    """Before migrations and functions touch distributed tables."""
    await connection.execute(_SESSION)


async def distribute_tables(connection: asyncpg.Connection) -> list[str]:
    """Distribute (or replicate) the listed tables not yet so; return their names."""
    done = {
        row["name"]
        for row in await connection.fetch(
            "SELECT logicalrelid::regclass::text AS name FROM pg_dist_partition"
        )
    }
    changed = []
    for table in REFERENCE_TABLES:
        if table not in done:
            await connection.execute("SELECT create_reference_table($1)", table)
            changed.append(table)
    for table, column in DISTRIBUTED_TABLES:
        if table in done:
            continue
        colocate_with = "default" if table == COLOCATION_ANCHOR else COLOCATION_ANCHOR
        await connection.execute(
            "SELECT create_distributed_table($1, $2, colocate_with => $3)",
            table,
            column,
            colocate_with,
        )
        changed.append(table)
    if changed:
        log.info("distributed %s by %s", ", ".join(changed), ACCOUNT_KEY)
    return changed


async def delegate_functions(connection: asyncpg.Connection) -> None:
    """Mark the money-moving functions for delegation; in the transaction that
    (re)defined them (sql_functions.apply), since every migrate defines them anew."""
    for function, argument in DELEGATED_FUNCTIONS:
        await connection.execute(
            "SELECT create_distributed_function($1::text::regproc, $2, colocate_with => $3)",
            function,
            argument,
            COLOCATION_ANCHOR,
        )
