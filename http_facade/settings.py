"""The facade's one settings object: environment variables, overridden by flags
(the mechanism both services share: ledger_client/settings_kit.py).

One uvicorn worker per process: run more processes behind the load balancer
(each with its own admin port) rather than workers that would each keep a
metrics registry and log set-up of their own.

| variable                     | default          | meaning |
|------------------------------|------------------|---------|
| FACADE_LISTEN                | 127.0.0.1:8080   | HTTP listen address |
| FACADE_PATH_PREFIX           | (none)           | e.g. /api/cats-gateway, before the three webhook paths |
| FACADE_LEDGER_TARGET         | 127.0.0.1:50051  | the ledger service |
| FACADE_LEDGER_DEADLINE       | 2.5              | seconds each ledger call may take (TradeBoss waits 3) |
| FACADE_LEDGER_BATCH_IN_FLIGHT | 4               | ApplyMovements calls in flight; executes and cancels waiting meanwhile go together in the next (0: one call each) |
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
| FACADE_ADMIN_LISTEN          | 127.0.0.1:9465   | admin HTTP: /healthz, /readyz, /metrics, /openapi.json; empty: none |
| FACADE_SHUTDOWN_GRACE        | 10               | seconds in-flight calls get on SIGTERM |
| FACADE_PRESTOP_DELAY         | 0                | seconds /readyz answers 503 on SIGTERM before draining starts |
| FACADE_LOG_LEVEL, _FORMAT    | INFO, text       | `text` or `json` log lines |
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _none_if_empty(value: object) -> object:
    return None if value == "" else value


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return value


def _upper(value: object) -> object:
    return value.upper() if isinstance(value, str) else value


OptionalPath = Annotated[Path | None, BeforeValidator(_none_if_empty)]
Networks = Annotated[tuple[Network, ...], NoDecode, BeforeValidator(_comma_list)]
Companies = Annotated[frozenset[int], NoDecode, BeforeValidator(_comma_list)]


class FacadeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FACADE_", frozen=True, extra="ignore")

    listen: str = Field("127.0.0.1:8080", description="HTTP listen address (webhooks only)")
    path_prefix: str = Field("", description="e.g. /api/cats-gateway")
    ledger_target: str = Field("127.0.0.1:50051", description="the ledger service")
    ledger_deadline: float = Field(2.5, gt=0, lt=3, description="seconds per ledger call")
    ledger_batch_in_flight: int = Field(
        4, ge=0, description="ApplyMovements calls in flight (0: one call per webhook)"
    )
    ledger_tls_ca: OptionalPath = Field(None, description="CA of the ledger's certificate")
    ledger_tls_cert: OptionalPath = Field(None, description="client certificate (mTLS)")
    ledger_tls_key: OptionalPath = Field(None, description="client key (mTLS)")
    ledger_token_file: OptionalPath = Field(None, description="bearer token for the ledger")
    allowed_networks: Networks = Field((), description="caller CIDRs, comma-separated")
    trusted_proxies: Networks = Field((), description="CIDRs whose X-Forwarded-For counts")
    allowed_companies: Companies = Field(frozenset(), description="companyIds, comma-separated")
    hmac_secret_file: OptionalPath = Field(None, description="require X-Signature")
    allow_any_caller: bool = Field(False, description="listen off loopback with no allowlist")
    max_body_bytes: int = Field(16384, ge=1, description="larger bodies are refused")
    # One hostile connection must cost one connection (connection_limits.py).
    max_header_bytes: int = Field(16384, ge=1, description="request line and headers")
    max_headers: int = Field(100, ge=1, description="header lines at most")
    header_timeout: float = Field(5.0, gt=0, description="seconds to send the headers")
    keepalive_timeout: float = Field(5.0, gt=0, description="idle keep-alive seconds")
    max_connections: int = Field(1000, ge=1, description="open connections at most")
    signature_window: float = Field(300.0, gt=0, description="signed timestamp skew, seconds")
    tls_cert: OptionalPath = Field(None, description="serve HTTPS")
    tls_key: OptionalPath = Field(None, description="key of tls_cert")
    admin_listen: str = Field("127.0.0.1:9465", description="health, readiness, metrics, docs")
    shutdown_grace: float = Field(10.0, ge=0, description="seconds to drain on SIGTERM")
    prestop_delay: float = Field(0.0, ge=0, description="seconds unready before draining")
    log_level: Annotated[
        Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_upper)
    ] = "INFO"
    log_format: Literal["text", "json"] = "text"

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]") or "127.0.0.1"

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @model_validator(mode="after")
    def _not_an_open_door(self) -> FacadeSettings:
        """Refuse settings that would open the door to anybody."""
        if self.path_prefix and not self.path_prefix.startswith("/"):
            raise ValueError("the path prefix must start with /")
        loopback = self.host == "localhost" or _is_loopback(self.host)
        if not loopback and not self.allowed_networks and not self.allow_any_caller:
            raise ValueError(
                f"listening on {self.host} with no FACADE_ALLOWED_NETWORKS would accept any "
                "caller; set the allowlist, or FACADE_ALLOW_ANY_CALLER=true if that is intended"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("TLS needs both FACADE_TLS_CERT and FACADE_TLS_KEY")
        return self


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
