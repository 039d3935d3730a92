"""Builds and runs the gRPC server: the ledger, health checking and reflection."""

from __future__ import annotations

import asyncio
import logging
import signal

import asyncpg
import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from ledger_client import pb, pb_grpc, tracing
from ledger_client.admin_http import AdminListener, Reply, Route, json_reply

from . import (
    database,
    distribution,
    embedded_pg,
    feed,
    metrics,
    migrations,
    security,
    shard_routing,
    sql_functions,
    transfers,
)
from .interceptor import CallInterceptor
from .servicer import LedgerServicer
from .settings import Settings

log = logging.getLogger(__name__)
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["LedgerService"].full_name


def database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one started on demand."""
    return settings.database_url or embedded_pg.start(settings.data_dir)


async def migration_status(url: str) -> list[str]:
    await database.wait_for_database(url, within=5)
    connection = await asyncpg.connect(url)
    try:
        return await migrations.status(connection)
    finally:
        await connection.close()


async def migrate(url: str, *, distributed: bool = False, wait: float = 30) -> list[str]:
    """The numbered migrations, then every function; on a Citus cluster
    (distributed) the tables and functions are distributed as well."""
    await database.wait_for_database(url, within=wait)
    connection = await asyncpg.connect(url)
    try:
        if not distributed:
            applied = await migrations.apply(connection)
            await sql_functions.apply(connection)
            return applied
        await distribution.prepare_session(connection)
        applied = await migrations.apply(connection)
        applied += await distribution.distribute_tables(connection)
        await sql_functions.apply(connection, then=distribution.delegate_functions)
        return applied
    finally:
        await connection.close()


async def serve(settings: Settings, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGTERM or SIGINT, then drain in-flight calls and exit."""
    if tracing.wanted():
        tracing.setup("ledger-service")
    url = database_url(settings)
    if settings.migrate_on_start:
        await migrate(url, distributed=settings.distributed)
    else:
        # Production may run with a role that has no DDL rights (docs/deployment.md).
        await database.wait_for_database(url, within=30)
    pool = await database.create_pool(url, settings.pool_min_size, settings.pool_max_size)
    router = await shard_routing.ShardRouter.start(pool, settings.distributed)
    tokens = security.TokenSource(
        settings.auth_tokens.get_secret_value(), settings.auth_tokens_file
    )
    credentials = security.server_credentials(
        settings.tls_cert, settings.tls_key, settings.tls_client_ca
    )
    # The token check first: an unauthenticated call is refused before it is timed or logged.
    interceptors: list[grpc.aio.ServerInterceptor] = (
        [security.BearerTokenInterceptor(tokens)] if tokens.enabled else []
    )
    interceptors.append(CallInterceptor(settings.default_deadline))
    server = grpc.aio.server(
        interceptors=interceptors,
        # The client package pings idle connections every 30 s: allow it. (This
        # is the key gRPC core reads; "min_recv_ping_interval..." is ignored,
        # and a WatchJournal stream quiet for minutes was cut by too_many_pings.)
        options=[
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_ping_interval_without_data_ms", 20_000),
        ],
    )
    # The journal feed's LISTEN connection, and its wake-up after every commit.
    journal_feed = feed.JournalFeed(
        pool,
        url,
        read_deadline=settings.default_deadline,
        recheck_after=settings.feed_recheck_after,
        max_concurrent_reads=max(1, settings.pool_max_size // 4),
    )
    await journal_feed.start()
    database.after_commit(pool, journal_feed.journal_appended)
    pb_grpc.add_LedgerServiceServicer_to_server(
        LedgerServicer(pool, settings, journal_feed, router), server
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    admin = None
    if settings.admin_listen:
        metrics.watch_pool(pool)
        admin = AdminListener(settings.admin_listen, _admin_routes(pool, health_servicer))
        await admin.start()
    if credentials is None:
        port = server.add_insecure_port(settings.listen)
    else:
        port = server.add_secure_port(settings.listen, credentials)
    if port == 0:
        raise SystemExit(f"cannot listen on {settings.listen}")
    await server.start()
    sweeper = asyncio.create_task(
        transfers.sweep_expired_holds(pool, settings.hold_sweep_interval), name="hold sweeper"
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "ledger service listening on %s (%s%s)",
        settings.listen,
        "plaintext" if credentials is None else "TLS",
        ", client certificates required" if settings.tls_client_ca else "",
    )
    if ready is not None:
        ready.set()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()

    log.info("shutting down: draining in-flight calls for up to %ss", settings.shutdown_grace)
    await health_servicer.enter_graceful_shutdown()
    # Watch streams never end on their own: they end now (UNAVAILABLE, so
    # their callers resume on another replica) while the rest drains.
    await asyncio.gather(server.stop(settings.shutdown_grace), journal_feed.close())
    sweeper.cancel()
    database.after_commit(pool, None)
    if admin is not None:
        await admin.close()
    await pool.close()
    log.info("ledger service stopped")


def _admin_routes(
    pool: asyncpg.Pool, health_servicer: health.aio.HealthServicer
) -> dict[str, Route]:
    """HTTP probes that need no gRPC client (they work under mTLS too)."""

    async def healthz() -> Reply:
        return json_reply(200, {"status": "up"})

    async def readyz() -> Reply:
        try:
            async with asyncio.timeout(1.0), pool.acquire() as connection:
                await connection.fetchval("SELECT 1")
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return json_reply(503, {"status": "database unreachable"})
        return json_reply(200, {"status": "ready"})

    return {"/healthz": healthz, "/readyz": readyz}
