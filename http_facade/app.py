"""Builds the facade's Starlette application: one visible list of routes."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger_client import ChannelSecurity

from . import codes, connection_limits, handlers, schema, validation
from .envelope import render
from .ledger_client import LedgerClient
from .settings import FacadeSettings


def create_app(settings: FacadeSettings, ledger: LedgerClient) -> Starlette:
    prefix = settings.path_prefix.rstrip("/")
    document = schema.openapi_document(prefix)

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(document)

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route(f"{prefix}/get-user-amount", handlers.get_user_amount, methods=["POST"]),
        Route(
            f"{prefix}/external-system-credit-limit-adjustment", handlers.execute, methods=["POST"]
        ),
        Route(
            f"{prefix}/cancel-external-system-credit-limit-adjustment",
            handlers.cancel,
            methods=["POST"],
        ),
        Route("/healthz", handlers.healthz),
        Route("/readyz", handlers.readyz),
        Route("/openapi.json", openapi_json),
        Route("/metrics", metrics),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connection_limits.watch_for_exhaustion(asyncio.get_running_loop())
        await ledger.open()
        try:
            yield
        finally:
            await ledger.close()

    async def not_a_webhook(request: Request, error: Exception) -> Response:
        """404 and 405 in TradeBoss's envelope too (with their HTTP status)."""
        status = getattr(error, "status_code", 404)
        code = codes.METHOD_NOT_ALLOWED if status == 405 else codes.UNKNOWN_PATH
        param = request.method if status == 405 else request.url.path[:100]
        trace = validation.trace_of(request.headers)
        answer = render(code, (param,), trace, time.perf_counter(), {})
        answer.status_code = status
        return answer

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={404: not_a_webhook, 405: not_a_webhook},
    )
    # A trailing slash is another path, not a redirect to wherever Host: says.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.hmac_secret = (
        settings.hmac_secret_file.read_bytes().strip() if settings.hmac_secret_file else None
    )
    return app


def ledger_client_for(settings: FacadeSettings) -> LedgerClient:
    token = settings.ledger_token_file.read_text().strip() if settings.ledger_token_file else ""
    return LedgerClient(
        settings.ledger_target,
        settings.ledger_deadline,
        ChannelSecurity(
            tls_ca=settings.ledger_tls_ca,
            tls_cert=settings.ledger_tls_cert,
            tls_key=settings.ledger_tls_key,
            token=token,
        ),
    )


def app_from_env() -> Starlette:
    """For uvicorn's worker processes (`--workers`): settings from FACADE_* variables."""
    settings = FacadeSettings.from_env()
    connection_limits.configure(settings)
    return create_app(settings, ledger_client_for(settings))
