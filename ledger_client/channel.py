"""How callers (the facade, the `ledger` CLI, internal services) open a channel
to the ledger: plaintext or TLS, with or without client certificate and token."""

from __future__ import annotations

from collections.abc import Callable
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


class _BearerToken:
    """Adds the token to a call's metadata."""

    def __init__(self, token: str) -> None:
        self._metadata = ("authorization", f"Bearer {token}")

    def _with_token(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        metadata.add(*self._metadata)
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


# grpc.aio files an interceptor under the first call kind it implements, so
# each kind needs its own (reconcile and export are server-streaming).
class _UnaryUnaryToken(_BearerToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


class _UnaryStreamToken(_BearerToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request)


class _StreamUnaryToken(_BearerToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request_iterator)


class _StreamStreamToken(_BearerToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request_iterator: Any
    ) -> Any:
        return await continuation(self._with_token(client_call_details), request_iterator)


def _token_interceptors(token: str) -> list[Any] | None:
    if not token:
        return None
    kinds = (_UnaryUnaryToken, _UnaryStreamToken, _StreamUnaryToken, _StreamStreamToken)
    return [kind(token) for kind in kinds]


_OPTIONS = {
    # A ledger that comes back is used again within a second or two, instead
    # of after gRPC's default backoff of up to two minutes.
    "grpc.initial_reconnect_backoff_ms": 100,
    "grpc.min_reconnect_backoff_ms": 100,
    "grpc.max_reconnect_backoff_ms": 2000,
    # Every address a target resolves to gets calls in turn (dns:///ledger:50051
    # naming several replicas; or ipv4:10.0.0.1:50051,10.0.0.2:50051), instead
    # of gRPC's default pick_first sending everything to one.
    "grpc.lb_policy_name": "round_robin",
    # A connection a load balancer or NAT dropped silently is found within
    # seconds (the ledger permits these pings: server.py).
    "grpc.keepalive_time_ms": 30_000,
    "grpc.keepalive_timeout_ms": 10_000,
    "grpc.keepalive_permit_without_calls": 1,
}


def open_channel(
    target: str, security: ChannelSecurity = ChannelSecurity(), **options: Any
) -> grpc.aio.Channel:
    """A grpc.aio channel to the ledger; reuse it for every call."""
    interceptors = _token_interceptors(security.token)
    channel_options = list({**_OPTIONS, **options}.items())
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
