"""The ledger service's one settings object: environment variables, overridden by flags.

| variable                    | default          | meaning                                              |
|-----------------------------|------------------|------------------------------------------------------|
| LEDGER_LISTEN               | 127.0.0.1:50051  | gRPC listen address                                  |
| LEDGER_DATABASE_URL         | (embedded)       | libpq URL of PostgreSQL 14+; unset: embedded server  |
| LEDGER_DATA_DIR             | .ledger          | where the embedded PostgreSQL keeps its data         |
| LEDGER_OVERTRADING_POLICY   | deduct           | ABNORMAL_OVERTRADING: `deduct` or `ignore`           |
| LEDGER_POOL_MIN_SIZE        | 2                | database connections kept open                       |
| LEDGER_POOL_MAX_SIZE        | 10               | database connections at most                         |
| LEDGER_DEFAULT_DEADLINE     | 10               | seconds allowed to a call that carries no deadline   |
| LEDGER_SHUTDOWN_GRACE       | 10               | seconds in-flight calls get to finish on SIGTERM     |
| LEDGER_LOG_LEVEL            | INFO             | Python logging level                                 |
| LEDGER_LOG_FORMAT           | text             | `text` (for a terminal) or `json` (one object a line)|
| LEDGER_METRICS_LISTEN       | 127.0.0.1:9464   | Prometheus /metrics address; empty: no metrics port  |
| LEDGER_TLS_CERT, _KEY       | (none)           | PEM files: serve TLS instead of plaintext            |
| LEDGER_TLS_CLIENT_CA        | (none)           | PEM CA: require client certificates it signed (mTLS) |
| LEDGER_AUTH_TOKENS          | (none)           | comma-separated bearer tokens accepted               |
| LEDGER_AUTH_TOKENS_FILE     | (none)           | file of accepted tokens, one a line, re-read on change |

With any token configured, every call but health checks needs
`authorization: Bearer <token>`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from .money import OvertradingPolicy


@dataclass(frozen=True)
class Settings:
    listen: str = "127.0.0.1:50051"
    database_url: str = ""
    data_dir: Path = Path(".ledger")
    overtrading_policy: OvertradingPolicy = OvertradingPolicy.DEDUCT
    pool_min_size: int = 2
    pool_max_size: int = 10
    default_deadline: float = 10.0
    shutdown_grace: float = 10.0
    log_level: str = "INFO"
    log_format: str = "text"
    metrics_listen: str = "127.0.0.1:9464"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_tokens: str = ""
    auth_tokens_file: Path | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        values: dict[str, object] = {}
        for field in fields(cls):
            raw = env.get("LEDGER_" + field.name.upper())
            if raw is None or (raw == "" and not isinstance(field.default, str)):
                continue
            values[field.name] = _convert(field.name, raw)
        return cls(**values)  # type: ignore[arg-type]

    def with_flags(self, flags: argparse.Namespace) -> Settings:
        values = {
            field.name: _convert(field.name, getattr(flags, field.name))
            for field in fields(self)
            if getattr(flags, field.name, None) is not None
        }
        return Settings(**{**self.__dict__, **values})


_PATHS = {"data_dir", "tls_cert", "tls_key", "tls_client_ca", "auth_tokens_file"}


def _convert(name: str, raw: object) -> object:
    default = Settings.__dataclass_fields__[name].default
    if isinstance(raw, str):
        if name in _PATHS:
            return Path(raw) if raw else None
        if isinstance(default, OvertradingPolicy):
            return OvertradingPolicy(raw.lower())
        if isinstance(default, bool):
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, int):
            return int(raw)
        if isinstance(default, float):
            return float(raw)
    return raw


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Flags for every setting; an absent flag leaves the environment's value."""
    parser.add_argument("--listen", help="gRPC listen address (LEDGER_LISTEN)")
    parser.add_argument("--database-url", help="PostgreSQL URL (LEDGER_DATABASE_URL)")
    parser.add_argument("--data-dir", help="embedded PostgreSQL data (LEDGER_DATA_DIR)")
    parser.add_argument(
        "--overtrading-policy",
        choices=[policy.value for policy in OvertradingPolicy],
        help="ABNORMAL_OVERTRADING policy (LEDGER_OVERTRADING_POLICY)",
    )
    parser.add_argument("--pool-min-size", help="LEDGER_POOL_MIN_SIZE")
    parser.add_argument("--pool-max-size", help="LEDGER_POOL_MAX_SIZE")
    parser.add_argument("--default-deadline", help="seconds (LEDGER_DEFAULT_DEADLINE)")
    parser.add_argument("--shutdown-grace", help="seconds (LEDGER_SHUTDOWN_GRACE)")
    parser.add_argument("--log-level", help="LEDGER_LOG_LEVEL")
    parser.add_argument("--log-format", choices=["text", "json"], help="LEDGER_LOG_FORMAT")
    parser.add_argument(
        "--metrics-listen", help="host:port, or '' for none (LEDGER_METRICS_LISTEN)"
    )
