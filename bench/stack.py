"""The system under test, started from scratch for one bench run: an embedded
PostgreSQL in a temporary directory (or, with --citus, a throwaway Citus
cluster: deploy/citus/cluster.py), ledger service(s) and facade(s)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger_service import embedded_pg

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Stack:
    data_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="ledger-bench-")))
    database_url: str = ""
    ledger_targets: list[str] = field(default_factory=list)
    facade_urls: list[str] = field(default_factory=list)
    facade_admin_urls: list[str] = field(default_factory=list)
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # The Citus cluster (deploy/citus/cluster.py Cluster) when there is one.
    cluster: Any = None
    # Both services' default: a log line per call, written to a file in
    # data_dir as a production service writes it to its journal.
    log_level: str = "INFO"

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "pgdata"

    @property
    def postgres_data_dirs(self) -> list[Path]:
        if self.cluster is None:
            return [self.pgdata]
        return [Path(node.data_dir) for node in self.cluster.nodes]

    @property
    def ledger_env(self) -> dict[str, str]:
        return {"LEDGER_DISTRIBUTED": "true"} if self.cluster is not None else {}

    def worker_url(self, index: int = 0) -> str:
        """The bench database straight on one worker (Citus only)."""
        worker = self.cluster.workers[index]
        return f"postgresql://postgres@127.0.0.1:{worker.port}/{_BENCH_DATABASE}"

    def start_citus(self, workers: int = 2) -> None:
        """A coordinator and workers on loopback, a database prepared on all."""
        cluster_module = citus_cluster_module()
        # A directory of its own: the servers' user must be able to reach it.
        root = Path(tempfile.mkdtemp(prefix="ledger-bench-citus-"))
        self.cluster = cluster_module.start(root, workers)
        cluster_module.create_database(self.cluster, _BENCH_DATABASE)
        self.database_url = self.cluster.url(_BENCH_DATABASE)

    def start_postgres(self, max_connections: int = 200) -> None:
        self.database_url = embedded_pg.control(self.pgdata, "start")
        conf = self.pgdata / "postgresql.auto.conf"
        # A benchmark database: durable commits stay on (what production
        # runs), connections sized for every pool and pgbench client, and
        # memory and WAL sized as a production server's would be rather than
        # PostgreSQL's small defaults (128 MB of buffers, a checkpoint every
        # 1 GB of WAL). By the 80%-of-peak runs the bench has written about
        # 1.6 million rows to each of journal_entries and requests (1.2 GB with
        # their indexes); with the defaults, checkpoints came every few minutes
        # and each made the next random index inserts write whole pages.
        with conf.open("a") as settings:
            settings.write(f"max_connections = {max_connections}\n")
            settings.write(f"shared_buffers = '{_shared_buffers_mb()}MB'\nmax_wal_size = '8GB'\n")
        embedded_pg.control(self.pgdata, "stop")
        self.database_url = embedded_pg.control(self.pgdata, "start")

    def start_ledgers(self, count: int, pool_size: int) -> None:
        for index in range(count):
            listen = f"127.0.0.1:{free_port()}"
            env = {
                **os.environ,
                "LEDGER_DATABASE_URL": self.database_url,
                "LEDGER_LISTEN": listen,
                "LEDGER_POOL_MIN_SIZE": str(pool_size),
                "LEDGER_POOL_MAX_SIZE": str(pool_size),
                "LEDGER_LOG_LEVEL": self.log_level,
                "LEDGER_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
                **self.ledger_env,
            }
            self._spawn([sys.executable, "-m", "ledger_service", "serve"], env, f"ledger-{index}")
            self.ledger_targets.append(listen)
        for target in self.ledger_targets:
            wait_for_health(target)

    def start_facades(self, count: int, extra_env: dict[str, str] | None = None) -> None:
        for index in range(count):
            port, admin_port = free_port(), free_port()
            env = {
                **os.environ,
                "FACADE_LISTEN": f"127.0.0.1:{port}",
                "FACADE_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
                "FACADE_LEDGER_TARGET": self.ledger_targets[index % len(self.ledger_targets)],
                "FACADE_LOG_LEVEL": self.log_level,
                **(extra_env or {}),
            }
            self._spawn([sys.executable, "-m", "http_facade.cli"], env, f"facade-{index}")
            self.facade_urls.append(f"http://127.0.0.1:{port}")
            self.facade_admin_urls.append(f"http://127.0.0.1:{admin_port}")
        for url in self.facade_admin_urls:
            wait_for_http(url + "/readyz")

    def spawn_from(
        self, checkout: Path, module: list[str], env: dict[str, str]
    ) -> subprocess.Popen[bytes]:
        """`python -m module...` run from another checkout (bench/ab.py): its
        packages come first on the path, its stubs generated if missing."""
        if not (checkout / "ledger_client" / "generated").exists():
            subprocess.run([sys.executable, "protos/generate.py", "."], cwd=checkout, check=True)
        name = f"{checkout.name}-{module[0]}-{len(self.processes)}"
        return self._spawn([sys.executable, "-m", *module], {**os.environ, **env}, name, checkout)

    def _spawn(
        self, command: list[str], env: dict[str, str], name: str, cwd: Path = ROOT
    ) -> subprocess.Popen[bytes]:
        log = (self.data_dir / f"{name}.log").open("ab")
        process = subprocess.Popen(command, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        self.processes.append(process)
        return process

    def pids_of(self, module: str) -> list[int]:
        """The processes started as `python -m module`."""
        return [p.pid for p in self.processes if isinstance(p.args, list) and module in p.args]

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if self.cluster is not None:
            citus_cluster_module().stop(self.cluster)
        elif self.database_url:
            embedded_pg.control(self.pgdata, "stop")
        shutil.rmtree(self.data_dir, ignore_errors=True)


_BENCH_DATABASE = "ledger_bench"


def citus_cluster_module() -> ModuleType:
    """deploy/citus/cluster.py (a script, standard library only, not a package)."""
    path = ROOT / "deploy" / "citus" / "cluster.py"
    spec = importlib.util.spec_from_file_location("citus_cluster", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _shared_buffers_mb() -> int:
    """An eighth of the machine's memory, between PostgreSQL's default and 2 GB."""
    memory_mb = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2**20
    return max(128, min(2048, memory_mb // 8))


def wait_for_health(target: str, within: float = 60.0) -> None:
    give_up_at = time.monotonic() + within
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > give_up_at:
                raise SystemExit(f"ledger at {target} not ready after {within}s")
            time.sleep(0.1)


def wait_for_http(url: str, within: float = 60.0) -> None:
    import urllib.error
    import urllib.request

    give_up_at = time.monotonic() + within
    while True:
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > give_up_at:
            raise SystemExit(f"{url} not ready after {within}s")
        time.sleep(0.1)
