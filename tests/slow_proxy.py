"""A gRPC proxy that forwards every call to the real ledger at once and holds
the answer back: a ledger that committed but answers too late."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from .conftest import free_port


class _Forward(grpc.GenericRpcHandler):
    def __init__(self, channel: grpc.aio.Channel, proxy: SlowProxy) -> None:
        self._channel = channel
        self._proxy = proxy

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        method = handler_call_details.method

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> Any:
            metadata = [(k, v) for k, v in context.invocation_metadata() or () if k == "trace"]
            call = self._channel.unary_unary(method)
            answer = await call(request, metadata=metadata, timeout=30)
            await asyncio.sleep(self._proxy.delay)  # read per call: a test may change it
            return answer

        # No (de)serializers: the bytes pass through untouched.
        return grpc.unary_unary_rpc_method_handler(forward)


class SlowProxy:
    def __init__(self, upstream: str, delay: float) -> None:
        self.upstream = upstream
        self.delay = delay
        self.target = f"127.0.0.1:{free_port()}"

    async def __aenter__(self) -> SlowProxy:
        self._channel = grpc.aio.insecure_channel(self.upstream)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers((_Forward(self._channel, self),))
        self._server.add_insecure_port(self.target)
        await self._server.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._server.stop(0)
        await self._channel.close()
