"""How callers (the facade, the `ledger` CLI, internal services) open a channel
to the ledger: plaintext or TLS, with or without client certificate and token."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc


@dataclass(frozen=True)
class ChannelSecurity:
    """tls_ca: trust this CA (turns TLS on); tls_cert/tls_key: present a client
    certificate (mTLS); token: send `authorization: Bearer <token>`."""

    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str = ""


class _BearerToken(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, Any], Awaitable[Any]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: Any,
    ) -> Any:
        metadata = grpc.aio.Metadata(*(client_call_details.metadata or ()))
        metadata.add(*self._metadata)
        details = grpc.aio.ClientCallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
        )
        return await continuation(details, request)


# A ledger that comes back is used again within a second or two, instead of
# after gRPC's default backoff of up to two minutes.
_RECONNECT = {
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
}


def open_channel(
    target: str, security: ChannelSecurity = ChannelSecurity(), **options: Any
) -> grpc.aio.Channel:
    """A grpc.aio channel to the ledger; reuse it for every call."""
    interceptors = [_BearerToken(security.token)] if security.token else None
    channel_options = list({**_RECONNECT, **options}.items())
    if security.tls_ca is None:
        if security.tls_cert or security.tls_key:
            raise ValueError("a client certificate needs TLS: give the CA as well")
        return grpc.aio.insecure_channel(target, options=channel_options, interceptors=interceptors)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=security.tls_ca.read_bytes(),
        private_key=security.tls_key.read_bytes() if security.tls_key else None,
        certificate_chain=security.tls_cert.read_bytes() if security.tls_cert else None,
    )
    return grpc.aio.secure_channel(
        target, credentials, options=channel_options, interceptors=interceptors
    )
