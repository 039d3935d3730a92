"""What every call on the public port shares, around the handlers (pure ASGI
middleware, in the order the app lists them):

- WebhookObserver: the arrival time the webhook's budget runs from, one log
  line and the metrics of each webhook call, whatever its answer;
- CallerAllowlist: callers outside FACADE_ALLOWED_NETWORKS are answered
  LW_2001 before anything else is read.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger_client import tracing

from . import codes, metrics, security, validation
from .envelope import render
from .settings import FacadeSettings

log = logging.getLogger(__name__)


class WebhookObserver:
    def __init__(self, app: ASGIApp, endpoints: dict[str, str]) -> None:
        self.app = app
        self.endpoints = endpoints  # path -> endpoint name in metrics and logs

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.endpoints.get(scope.get("path", "")) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        arrived = time.perf_counter()
        trace = validation.trace_of(Headers(scope=scope))
        tracing.tag_tradeboss_trace(trace)
        state = scope.setdefault("state", {})
        fields: dict[str, Any] = {"endpoint": endpoint, "trace": trace}
        state.update(arrived=arrived, trace=trace, log_fields=fields)
        metrics.WEBHOOKS.started(endpoint)
        try:
            await self.app(scope, receive, send)
        finally:
            elapsed = time.perf_counter() - arrived
            # Set by whoever rendered the answer; an exception that escaped renders LW_5000.
            code = state.get("code", codes.INTERNAL_ERROR.code)
            metrics.WEBHOOKS.ended(endpoint, code, elapsed)
            fields.update(code=code, duration_ms=round(elapsed * 1000, 2))
            log.info("%s %s", endpoint, code, extra={"fields": fields})


class CallerAllowlist:
    def __init__(self, app: ASGIApp, settings: FacadeSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.settings.allowed_networks:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        peer = scope["client"][0] if scope.get("client") else None
        address = security.caller_address(
            peer, headers.getlist("x-forwarded-for"), self.settings.trusted_proxies
        )
        if security.allowed(address, self.settings.allowed_networks):
            await self.app(scope, receive, send)
            return
        metrics.REJECTIONS.labels("network").inc()
        log.warning("refused caller %s (peer %s)", address, peer)
        state = scope.setdefault("state", {})
        state["code"] = codes.CALLER_NOT_ALLOWED.code
        arrived = state.get("arrived", time.perf_counter())
        response = render(
            codes.CALLER_NOT_ALLOWED, (address,), validation.trace_of(headers), arrived, {}
        )
        await response(scope, receive, send)
