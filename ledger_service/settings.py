"""The ledger service's one settings object: environment variables, overridden by flags.

| variable                    | default          | meaning                                              |
|-----------------------------|------------------|------------------------------------------------------|
| LEDGER_LISTEN               | 127.0.0.1:50051  | gRPC listen address                                  |
| LEDGER_DATABASE_URL         | (embedded)       | libpq URL of PostgreSQL 14+; unset: embedded server  |
| LEDGER_DATA_DIR             | .ledger          | where the embedded PostgreSQL keeps its data         |
| LEDGER_OVERTRADING_POLICY   | deduct           | ABNORMAL_OVERTRADING: `deduct` or `ignore`           |
| LEDGER_POOL_MIN_SIZE        | 2                | database connections kept open                       |
| LEDGER_POOL_MAX_SIZE        | 10               | database connections at most                         |
| LEDGER_BATCH_MAX_SIZE       | 64               | executes and cancels committed (balances read) together at most |
| LEDGER_BATCH_MAX_IN_FLIGHT  | 2                | batches in flight before new ones queue (group commit; balance reads have as many of their own) |
| LEDGER_DEFAULT_DEADLINE     | 10               | seconds allowed to a call that carries no deadline   |
| LEDGER_SHUTDOWN_GRACE       | 10               | seconds in-flight calls get to finish on SIGTERM     |
| LEDGER_HOLD_SWEEP_INTERVAL  | 1                | seconds between releases of expired holds            |
| LEDGER_FEED_RECHECK_AFTER   | 1                | seconds a caught-up WatchJournal waits unwoken before reading again |
| LEDGER_LOG_LEVEL            | INFO             | Python logging level                                 |
| LEDGER_LOG_FORMAT           | text             | `text` (for a terminal) or `json` (one object a line)|
| LEDGER_ADMIN_LISTEN         | 127.0.0.1:9464   | HTTP /healthz, /readyz, /metrics; empty: none        |
| LEDGER_MIGRATE_ON_START     | true             | `serve` applies migrations first (`--no-migrate`: no) |
| LEDGER_DISTRIBUTED          | false            | the database is a Citus coordinator: migrate distributes tables and functions, group commit batches per worker (docs/scaling.md) |
| LEDGER_TLS_CERT, _KEY       | (none)           | PEM files: serve TLS instead of plaintext            |
| LEDGER_TLS_CLIENT_CA        | (none)           | PEM CA: require client certificates it signed (mTLS) |
| LEDGER_AUTH_TOKENS          | (none)           | comma-separated bearer tokens accepted               |
| LEDGER_AUTH_TOKENS_FILE     | (none)           | file of accepted tokens, one a line, re-read on change |

With any token configured, every call but health checks needs
`authorization: Bearer <token>`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .money import OvertradingPolicy


def _none_if_empty(value: object) -> object:
    return None if value == "" else value


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty)]
Seconds = Annotated[float, Field(gt=0)]


class Settings(BaseSettings):
    """The ledger service's one settings object (ledger_client/settings_kit.py)."""

    model_config = SettingsConfigDict(env_prefix="LEDGER_", frozen=True, extra="ignore")

    listen: str = Field("127.0.0.1:50051", description="gRPC listen address")
    database_url: str = Field("", description="PostgreSQL URL; empty: the embedded one")
    data_dir: Path = Field(Path(".ledger"), description="embedded PostgreSQL data")
    overtrading_policy: Annotated[OvertradingPolicy, BeforeValidator(_lower)] = Field(
        OvertradingPolicy.DEDUCT, description="ABNORMAL_OVERTRADING policy"
    )
    pool_min_size: int = Field(2, ge=1, description="database connections kept open")
    pool_max_size: int = Field(10, ge=1, description="database connections at most")
    batch_max_size: int = Field(64, ge=1, le=1000, description="movements per batch at most")
    batch_max_in_flight: int = Field(
        2, ge=1, description="batches in flight before new movements queue"
    )
    default_deadline: Seconds = Field(10.0, description="seconds for a call with no deadline")
    shutdown_grace: float = Field(10.0, ge=0, description="seconds to drain on SIGTERM")
    hold_sweep_interval: float = Field(
        1.0, gt=0, description="seconds between releases of expired holds"
    )
    feed_recheck_after: Seconds = Field(
        1.0, description="seconds a caught-up journal watcher waits unwoken before reading again"
    )
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    log_format: Literal["text", "json"] = "text"
    admin_listen: str = Field(
        "127.0.0.1:9464", description="HTTP /healthz, /readyz, /metrics; empty: none"
    )
    migrate_on_start: bool = Field(True, description="serve applies migrations first")
    distributed: bool = Field(
        False, description="a Citus coordinator: distribute tables and functions, batch per worker"
    )
    tls_cert: OptionalPath = Field(None, description="PEM certificate: serve TLS")
    tls_key: OptionalPath = Field(None, description="PEM key of tls_cert")
    tls_client_ca: OptionalPath = Field(None, description="require client certificates")
    auth_tokens: SecretStr = Field(SecretStr(""), description="accepted bearer tokens, comma list")
    auth_tokens_file: OptionalPath = Field(None, description="file of accepted tokens")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        if self.batch_max_in_flight > self.pool_max_size:
            raise ValueError("batch_max_in_flight must not exceed pool_max_size")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both LEDGER_TLS_CERT and LEDGER_TLS_KEY")
        return self
