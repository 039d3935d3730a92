"""Builds the facade's Starlette application: one visible list of routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger_client import ChannelSecurity

from . import handlers, schema
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
        await ledger.open()
        try:
            yield
        finally:
            await ledger.close()

    app = Starlette(routes=routes, lifespan=lifespan)
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
    return create_app(settings, ledger_client_for(settings))
