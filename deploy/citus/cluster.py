"""A throwaway Citus cluster on loopback for tests and the bench: a coordinator
and N workers (Debian's PostgreSQL 15 with the Citus built by
../shared/citus/build.sh), each in its own directory under one temporary one.

    python deploy/citus/cluster.py run -- COMMAND...   start, run COMMAND against it, tear down
    python deploy/citus/cluster.py start DIR           start and leave running (DIR/cluster.json)
    python deploy/citus/cluster.py stop DIR            stop and remove DIR
    python deploy/citus/cluster.py create-database DIR NAME
    python deploy/citus/cluster.py restart-worker DIR INDEX [--down SECONDS]

`run` gives COMMAND LEDGER_TEST_DATABASE_URL (the coordinator),
LEDGER_TEST_CITUS_CLUSTER (the state file, for create-database and
restart-worker) and LEDGER_DISTRIBUTED=true.

PostgreSQL refuses to run as root, so as root the servers run as the
`postgres` user Debian's package creates (runuser); psql connects over TCP
with trust authentication, which is why the cluster only listens on 127.0.0.1.
Standard library only: it runs before any virtualenv exists.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

PG_BIN = Path("/usr/lib/postgresql/15/bin")
CITUS_SO = Path("/usr/lib/postgresql/15/lib/citus.so")
BUILD_SCRIPT = Path(__file__).resolve().parents[3] / "shared" / "citus" / "build.sh"
SERVER_USER = "postgres"

# fsync stays on: the ledger refuses a server that could lose commits.
# max_prepared_transactions: Citus commits multi-shard writes with two-phase
# commit. wal_level=logical: shard moves (citus_rebalance_start) copy with
# logical replication. Stat counters and function statistics let the tests
# see which node ran what (single- or multi-shard, delegated or not).
_CONFIG = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
shared_preload_libraries = 'citus'
max_connections = 300
max_prepared_transactions = 300
wal_level = logical
shared_buffers = 64MB
log_min_messages = warning
citus.enable_stat_counters = on
track_functions = 'pl'
"""


@dataclass
class Node:
    name: str
    port: int
    data_dir: str


@dataclass
class Cluster:
    root: str
    coordinator: Node
    workers: list[Node]

    @property
    def nodes(self) -> list[Node]:
        return [self.coordinator, *self.workers]

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SERVER_USER}@127.0.0.1:{self.coordinator.port}/{database}"

    def save(self) -> Path:
        path = Path(self.root) / "cluster.json"
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, root: str | Path) -> Cluster:
        path = Path(root)
        state = json.loads((path if path.is_file() else path / "cluster.json").read_text())
        return cls(
            state["root"], Node(**state["coordinator"]), [Node(**w) for w in state["workers"]]
        )


def ensure_citus() -> None:
    """Build Citus into Debian's PostgreSQL 15 unless it is there (about 100 s)."""
    if CITUS_SO.exists() and (PG_BIN / "initdb").exists():
        return
    if not BUILD_SCRIPT.exists():
        sys.exit(f"Citus is not installed and {BUILD_SCRIPT} is missing")
    subprocess.run(["bash", str(BUILD_SCRIPT)], check=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", SERVER_USER, "--", *command] if os.geteuid() == 0 else command


def _pg_ctl(node: Node, *action: str) -> None:
    log = str(Path(node.data_dir).parent / f"{node.name}.log")
    subprocess.run(
        _as_server_user([str(PG_BIN / "pg_ctl"), "-D", node.data_dir, "-l", log, "-w", *action]),
        check=True,
        stdout=subprocess.DEVNULL,
    )


def psql(node: Node, sql: str, database: str = "postgres") -> str:
    done = subprocess.run(
        [
            str(PG_BIN / "psql"),
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            str(node.port),
            "-U",
            SERVER_USER,
            "-d",
            database,
            "-c",
            sql,
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout.strip()


def start(root: Path, workers: int = 2) -> Cluster:
    ensure_citus()
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        user = pwd.getpwnam(SERVER_USER)
        os.chown(root, user.pw_uid, user.pw_gid)
    names = ["coordinator", *(f"worker{i}" for i in range(1, workers + 1))]
    nodes = [Node(name, _free_port(), str(root / name)) for name in names]
    cluster = Cluster(str(root), nodes[0], nodes[1:])
    cluster.save()
    for node in nodes:
        subprocess.run(
            _as_server_user(
                [
                    str(PG_BIN / "initdb"),
                    "-D",
                    node.data_dir,
                    "-U",
                    SERVER_USER,
                    "--auth=trust",
                    "--no-sync",
                    "-E",
                    "UTF8",
                    "--locale=C.UTF-8",
                ]
            ),
            check=True,
            stdout=subprocess.DEVNULL,
        )
        with open(Path(node.data_dir) / "postgresql.conf", "a") as config:
            config.write(_CONFIG.format(port=node.port, socket_dir=root))
        _pg_ctl(node, "start")
    create_database(cluster, "postgres")
    return cluster


def create_database(cluster: Cluster, name: str) -> None:
    """A database with Citus on every node and the workers registered: what
    an operator prepares before `ledger-service migrate --distributed`."""
    if name != "postgres":
        for node in cluster.nodes:
            psql(node, f'CREATE DATABASE "{name}"')
    for node in cluster.nodes:
        psql(node, "CREATE EXTENSION IF NOT EXISTS citus", name)
    coordinator = cluster.coordinator
    psql(coordinator, f"SELECT citus_set_coordinator_host('127.0.0.1', {coordinator.port})", name)
    for worker in cluster.workers:
        psql(coordinator, f"SELECT citus_add_node('127.0.0.1', {worker.port})", name)


def drop_database(cluster: Cluster, name: str) -> None:
    for node in reversed(cluster.nodes):
        psql(node, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def restart_worker(cluster: Cluster, index: int, down_seconds: float = 0.0) -> None:
    """A fast shutdown (every session cut), down for a while, started again."""
    worker = cluster.workers[index]
    _pg_ctl(worker, "stop", "-m", "fast")
    time.sleep(down_seconds)
    _pg_ctl(worker, "start")


def stop(cluster: Cluster) -> None:
    for node in reversed(cluster.nodes):
        if (Path(node.data_dir) / "postmaster.pid").exists():
            _pg_ctl(node, "stop", "-m", "immediate")
    shutil.rmtree(cluster.root, ignore_errors=True)


def run(command: list[str], workers: int) -> int:
    root = Path(tempfile.mkdtemp(prefix="ledger-citus-"))
    began = time.monotonic()
    cluster = start(root, workers)
    print(
        f"citus cluster up in {time.monotonic() - began:.1f}s: coordinator :{cluster.coordinator.port}, "
        f"workers {', '.join(f':{w.port}' for w in cluster.workers)}",
        flush=True,
    )
    env = {
        **os.environ,
        "LEDGER_TEST_DATABASE_URL": cluster.url(),
        "LEDGER_TEST_CITUS_CLUSTER": cluster.save().as_posix(),
        "LEDGER_DISTRIBUTED": "true",
    }
    try:
        return subprocess.run(command, env=env).returncode
    finally:
        stop(cluster)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="action", required=True)
    run_parser = commands.add_parser("run", help="start, run a command against it, tear down")
    run_parser.add_argument("--workers", type=int, default=2)
    run_parser.add_argument("command", nargs=argparse.REMAINDER)
    start_parser = commands.add_parser("start", help="start and leave running")
    start_parser.add_argument("dir", type=Path)
    start_parser.add_argument("--workers", type=int, default=2)
    commands.add_parser("stop", help="stop and remove").add_argument("dir")
    create = commands.add_parser("create-database", help="a Citus database on every node")
    create.add_argument("dir")
    create.add_argument("name")
    drop = commands.add_parser("drop-database", help="drop a database on every node")
    drop.add_argument("dir")
    drop.add_argument("name")
    restart = commands.add_parser("restart-worker", help="fast stop and start one worker")
    restart.add_argument("dir")
    restart.add_argument("index", type=int)
    restart.add_argument("--down", type=float, default=0.0, help="seconds to stay down")
    flags = parser.parse_args(argv)
    if flags.action == "run":
        command = flags.command[1:] if flags.command[:1] == ["--"] else flags.command
        if not command:
            parser.error("run needs a command after --")
        return run(command, flags.workers)
    if flags.action == "start":
        cluster = start(flags.dir, flags.workers)
        print(cluster.url())
    elif flags.action == "stop":
        stop(Cluster.load(flags.dir))
    elif flags.action == "create-database":
        create_database(Cluster.load(flags.dir), flags.name)
    elif flags.action == "drop-database":
        drop_database(Cluster.load(flags.dir), flags.name)
    elif flags.action == "restart-worker":
        restart_worker(Cluster.load(flags.dir), flags.index, flags.down)
    return 0


if __name__ == "__main__":
    sys.exit(main())
