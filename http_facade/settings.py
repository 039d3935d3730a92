"""The facade's one settings object: environment variables, overridden by flags.

| variable                     | default          | meaning |
|------------------------------|------------------|---------|
| FACADE_LISTEN                | 127.0.0.1:8080   | HTTP listen address |
| FACADE_PATH_PREFIX           | (none)           | e.g. /api/cats-gateway, before the three webhook paths |
| FACADE_LEDGER_TARGET         | 127.0.0.1:50051  | the ledger service |
| FACADE_LEDGER_DEADLINE       | 2.5              | seconds each ledger call may take (TradeBoss waits 3) |
| FACADE_LEDGER_TLS_CA         | (none)           | CA of the ledger's certificate: turns TLS on |
| FACADE_LEDGER_TLS_CERT, _KEY | (none)           | client certificate for the ledger (mTLS) |
| FACADE_LEDGER_TOKEN_FILE     | (none)           | file holding the bearer token for the ledger |
| FACADE_ALLOWED_NETWORKS      | (none)           | caller CIDRs allowed, comma-separated |
| FACADE_TRUSTED_PROXIES       | (none)           | CIDRs whose X-Forwarded-For is believed |
| FACADE_ALLOWED_COMPANIES     | (none: any)      | companyId values allowed, comma-separated |
| FACADE_HMAC_SECRET_FILE      | (none)           | shared secret: require X-Signature on every webhook |
| FACADE_ALLOW_ANY_CALLER      | false            | allow a non-loopback listen with no network allowlist |
| FACADE_MAX_BODY_BYTES        | 16384            | larger bodies are refused |
| FACADE_MAX_HEADER_BYTES      | 16384            | a longer request line and header block closes the connection (431) |
| FACADE_MAX_HEADERS           | 100              | more header lines close the connection (431) |
| FACADE_HEADER_TIMEOUT        | 5                | seconds to send a request's headers (else 408, closed) |
| FACADE_KEEPALIVE_TIMEOUT     | 5                | seconds an idle keep-alive connection stays open |
| FACADE_MAX_CONNECTIONS       | 1000             | open connections at most; more are closed at once |
| FACADE_SIGNATURE_WINDOW      | 300              | with HMAC: seconds a signed timestamp may be off |
| FACADE_TLS_CERT, _KEY        | (none)           | serve HTTPS (uvicorn's TLS) |
| FACADE_WORKERS               | 1                | uvicorn worker processes |
| FACADE_LOG_LEVEL, _FORMAT    | INFO, text       | `text` or `json` log lines |
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class FacadeSettings:
    listen: str = "127.0.0.1:8080"
    path_prefix: str = ""
    ledger_target: str = "127.0.0.1:50051"
    ledger_deadline: float = 2.5
    ledger_tls_ca: Path | None = None
    ledger_tls_cert: Path | None = None
    ledger_tls_key: Path | None = None
    ledger_token_file: Path | None = None
    allowed_networks: tuple[Network, ...] = ()
    trusted_proxies: tuple[Network, ...] = ()
    allowed_companies: frozenset[int] = field(default_factory=frozenset)
    hmac_secret_file: Path | None = None
    allow_any_caller: bool = False
    max_body_bytes: int = 16384
    # One hostile connection must cost one connection (connection_limits.py).
    max_header_bytes: int = 16384
    max_headers: int = 100
    header_timeout: float = 5.0
    keepalive_timeout: float = 5.0
    max_connections: int = 1000
    signature_window: float = 300.0
    tls_cert: Path | None = None
    tls_key: Path | None = None
    workers: int = 1
    log_level: str = "INFO"
    log_format: str = "text"

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> FacadeSettings:
        values = {}
        for item in fields(cls):
            raw = env.get("FACADE_" + item.name.upper())
            if raw is not None:
                values[item.name] = _convert(item.name, raw)
        return cls(**values)  # type: ignore[arg-type]

    def with_flags(self, flags: argparse.Namespace) -> FacadeSettings:
        values: dict[str, Any] = {
            item.name: _convert(item.name, value)
            for item in fields(self)
            if (value := getattr(flags, item.name, None)) is not None
        }
        return replace(self, **values)

    def check(self) -> None:
        """Refuse settings that would open the door to anybody."""
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise ValueError("the path prefix must start with /")
        if not 0 < self.ledger_deadline < 3:
            raise ValueError("the ledger deadline must be between 0 and 3 seconds")
        loopback = self.host in ("localhost",) or _is_loopback(self.host)
        if not loopback and not self.allowed_networks and not self.allow_any_caller:
            raise ValueError(
                f"listening on {self.host} with no FACADE_ALLOWED_NETWORKS would accept any "
                "caller; set the allowlist, or FACADE_ALLOW_ANY_CALLER=true if that is intended"
            )
        if min(self.max_header_bytes, self.max_headers, self.max_connections) < 1:
            raise ValueError("the header and connection limits must be at least 1")
        if min(self.header_timeout, self.keepalive_timeout, self.signature_window) <= 0:
            raise ValueError("the timeouts and the signature window must be > 0")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both FACADE_TLS_CERT and FACADE_TLS_KEY")


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_PATHS = {
    "ledger_tls_ca",
    "ledger_tls_cert",
    "ledger_tls_key",
    "ledger_token_file",
    "hmac_secret_file",
    "tls_cert",
    "tls_key",
}


def _convert(name: str, raw: str) -> object:
    if name in _PATHS:
        return Path(raw) if raw else None
    if name in ("allowed_networks", "trusted_proxies"):
        return tuple(ipaddress.ip_network(part.strip()) for part in raw.split(",") if part.strip())
    if name == "allowed_companies":
        return frozenset(int(part) for part in raw.split(",") if part.strip())
    if name == "allow_any_caller":
        return raw.strip().lower() in ("1", "true", "yes")
    if name in ("max_body_bytes", "workers", "max_header_bytes", "max_headers", "max_connections"):
        return int(raw)
    if name in ("ledger_deadline", "header_timeout", "keepalive_timeout", "signature_window"):
        return float(raw)
    return raw


def add_flags(parser: argparse.ArgumentParser) -> None:
    """A flag for every setting; an absent flag leaves the environment's value."""
    for item in fields(FacadeSettings):
        flag = "--" + item.name.replace("_", "-")
        if item.name == "allow_any_caller":
            parser.add_argument(
                flag,
                action="store_const",
                const="true",
                default=None,
                help="accept callers from anywhere (FACADE_ALLOW_ANY_CALLER)",
            )
        else:
            parser.add_argument(flag, help=f"FACADE_{item.name.upper()}")
