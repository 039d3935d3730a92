"""Who may call the ledger: TLS (optionally with client certificates) and
bearer tokens for internal callers."""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

# Load balancers probe health without credentials.
_OPEN_METHODS = ("/grpc.health.v1.Health/",)


def server_credentials(
    cert: Path | None, key: Path | None, client_ca: Path | None
) -> grpc.ServerCredentials | None:
    """TLS credentials, requiring client certificates signed by client_ca when
    it is given; None for a plaintext port."""
    if cert is None and key is None:
        if client_ca is not None:
            raise ValueError("a client CA needs a server certificate and key as well")
        return None
    if cert is None or key is None:
        raise ValueError("TLS needs both a certificate and a key")
    return grpc.ssl_server_credentials(
        [(key.read_bytes(), cert.read_bytes())],
        root_certificates=client_ca.read_bytes() if client_ca else None,
        require_client_auth=client_ca is not None,
    )


class TokenSource:
    """Accepted bearer tokens: from a comma-separated list and/or a file with
    one token per line. The file is re-read when it changes, so tokens can be
    rotated (add the new one, move callers, remove the old) without a restart."""

    def __init__(self, tokens: str, tokens_file: Path | None) -> None:
        self._fixed = {t.strip() for t in tokens.split(",") if t.strip()}
        self._file = tokens_file
        self._file_tokens: set[str] = set()
        self._file_stamp: float | None = None
        self._checked_at = 0.0
        self._reload()

    @property
    def enabled(self) -> bool:
        return bool(self._fixed) or self._file is not None

    def _reload(self) -> None:
        if self._file is None:
            return
        stamp = os.stat(self._file).st_mtime
        if stamp != self._file_stamp:
            lines = self._file.read_text(encoding="utf-8").splitlines()
            self._file_tokens = {
                line.strip() for line in lines if line.strip() and not line.startswith("#")
            }
            self._file_stamp = stamp
            log.info("loaded %d tokens from %s", len(self._file_tokens), self._file)

    def accepts(self, token: str) -> bool:
        now = time.monotonic()
        if self._file is not None and now - self._checked_at > 1.0:
            self._checked_at = now
            try:
                self._reload()
            except OSError as error:  # keep the last good set
                log.error("cannot read tokens file %s: %s", self._file, error)
        candidates = self._fixed | self._file_tokens
        # Compare against every token so timing does not say which one is close.
        return (
            bool(token)
            and sum(hmac.compare_digest(token.encode(), known.encode()) for known in candidates) > 0
        )


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without `authorization: Bearer <token>` for an accepted token."""

    def __init__(self, tokens: TokenSource) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method = handler_call_details.method
        if method.startswith(_OPEN_METHODS):
            return await continuation(handler_call_details)
        token = ""
        for key, value in handler_call_details.invocation_metadata or ():
            if key == "authorization" and isinstance(value, str):
                scheme, _, token = value.partition(" ")
                token = token.strip() if scheme.lower() == "bearer" else ""
        handler = await continuation(handler_call_details)
        if self._tokens.accepts(token) or handler is None:
            return handler
        log.warning("refused %s: missing or unknown bearer token", method)
        return _refusal_like(handler)


def _refusal_like(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape that answers UNAUTHENTICATED."""

    async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, "a valid bearer token is required")

    make = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }[(handler.request_streaming, handler.response_streaming)]
    return make(
        refuse,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )
