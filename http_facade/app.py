"""Builds the facade: the public Starlette application (one visible list of
routes: the three webhooks and nothing else) and its admin listener
(health, readiness, metrics, OpenAPI) on an address of its own."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ledger_client import ChannelSecurity
from ledger_client.admin_http import AdminListener, Reply, json_reply
from ledger_client.admin_http import Route as AdminRoute

from . import codes, connection_limits, handlers, schema, validation
from .envelope import Answer, render
from .ledger_client import LedgerClient
from .middleware import CallerAllowlist, WebhookObserver
from .settings import FacadeSettings

# The three webhooks: (path under the prefix, handler, name in metrics and logs).
WEBHOOKS = [
    ("/get-user-amount", handlers.get_user_amount, "get-user-amount"),
    (
        "/external-system-credit-limit-adjustment",
        handlers.execute,
        "external-system-credit-limit-adjustment",
    ),
    (
        "/cancel-external-system-credit-limit-adjustment",
        handlers.cancel,
        "cancel-external-system-credit-limit-adjustment",
    ),
]


def create_app(settings: FacadeSettings, ledger: LedgerClient) -> Starlette:
    prefix = settings.path_prefix.rstrip("/")
    routes = [Route(prefix + path, handler, methods=["POST"]) for path, handler, _ in WEBHOOKS]
    middleware = [
        Middleware(WebhookObserver, endpoints={prefix + path: name for path, _, name in WEBHOOKS}),
        Middleware(CallerAllowlist, settings=settings),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        connection_limits.watch_for_exhaustion(asyncio.get_running_loop())
        await ledger.open()
        admin = None
        if settings.admin_listen:
            admin = AdminListener(settings.admin_listen, admin_routes(app, ledger, prefix))
            await admin.start()
        try:
            yield
        finally:
            if admin is not None:
                await admin.close()
            await ledger.close()

    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            Answer: handlers.refusal,
            Exception: handlers.internal_error,
            404: not_a_webhook,
            405: not_a_webhook,
        },
    )
    # A trailing slash is another path, not a redirect to wherever Host: says.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.ledger = ledger
    app.state.draining = False
    app.state.hmac_secret = (
        settings.hmac_secret_file.read_bytes().strip() if settings.hmac_secret_file else None
    )
    return app


async def not_a_webhook(request: Request, error: Exception) -> Response:
    """404 and 405 in TradeBoss's envelope too (with their HTTP status)."""
    status = getattr(error, "status_code", 404)
    code = codes.METHOD_NOT_ALLOWED if status == 405 else codes.UNKNOWN_PATH
    param = request.method if status == 405 else request.url.path[:100]
    answer = render(code, (param,), validation.trace_of(request.headers), time.perf_counter(), {})
    answer.status_code = status
    return answer


def admin_routes(app: Starlette, ledger: LedgerClient, prefix: str) -> dict[str, AdminRoute]:
    """What operators and probes read; it names addresses and money flows, so
    it is never served on the public port."""
    document = json_reply(200, schema.openapi_document(prefix))

    async def healthz() -> Reply:
        return json_reply(200, {"status": "up"})

    async def readyz() -> Reply:
        if app.state.draining:  # SIGTERM: let the load balancer stop sending first
            return json_reply(503, {"status": "draining"})
        if await ledger.ready():
            return json_reply(200, {"status": "ready", "ledger": ledger.target})
        return json_reply(503, {"status": "ledger unreachable", "ledger": ledger.target})

    async def openapi() -> Reply:
        return document

    return {"/healthz": healthz, "/readyz": readyz, "/openapi.json": openapi}


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
        batch_in_flight=settings.ledger_batch_in_flight,
    )
