"""The facade's only way to the ledger: one reused gRPC channel, a deadline on
every call, and every failure turned into an answer code. Webhook calls in
flight at the same time (balance queries, executes, cancels) travel together
in ApplyMovements calls (ledger_client/movements.py) unless batching is off."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ledger_client import ChannelSecurity, ErrorDetail, error_detail, open_channel, pb, pb_grpc
from ledger_client.movements import MovementFailed, MovementSender

from . import codes, metrics
from .envelope import Answer
from .schema import TRADEBOSS_FIELD

log = logging.getLogger(__name__)
T = TypeVar("T")


class LedgerClient:
    def __init__(
        self,
        target: str,
        deadline: float,
        security: ChannelSecurity,
        batch_in_flight: int = 0,
    ) -> None:
        self.target = target
        self.deadline = deadline
        self._security = security
        self._batch_in_flight = batch_in_flight
        self._channel: grpc.aio.Channel | None = None
        self._movements: MovementSender | None = None

    async def open(self) -> None:
        """Open the one channel, inside the serving event loop."""
        self._channel = open_channel(self.target, self._security)
        self._stub = pb_grpc.LedgerServiceStub(self._channel)
        self._health = health_pb2_grpc.HealthStub(self._channel)
        if self._batch_in_flight:
            self._movements = MovementSender(self._stub, max_in_flight=self._batch_in_flight)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def balance(
        self, request: pb.GetBalanceRequest, trace: str, seconds: float
    ) -> pb.GetBalanceResponse:
        if self._movements is not None:
            return await self._call(self._movements.balance(request, trace, seconds))
        return await self._call(self._stub.GetBalance(request, **self._options(trace, seconds)))

    async def adjust(
        self, request: pb.AdjustRequest, trace: str, seconds: float
    ) -> pb.AdjustResponse:
        if self._movements is not None:
            return await self._call(self._movements.adjust(request, trace, seconds))
        return await self._call(self._stub.Adjust(request, **self._options(trace, seconds)))

    async def cancel(
        self, request: pb.CancelAdjustmentRequest, trace: str, seconds: float
    ) -> pb.CancelAdjustmentResponse:
        if self._movements is not None:
            return await self._call(self._movements.cancel(request, trace, seconds))
        return await self._call(
            self._stub.CancelAdjustment(request, **self._options(trace, seconds))
        )

    async def ready(self) -> bool:
        try:
            answer = await self._health.Check(health_pb2.HealthCheckRequest(), timeout=1.0)
        except grpc.aio.AioRpcError:
            return False
        return bool(answer.status == health_pb2.HealthCheckResponse.SERVING)

    def _options(self, trace: str, seconds: float) -> dict[str, object]:
        return {"timeout": seconds, "metadata": (("trace", trace),)}

    async def _call(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except grpc.aio.AioRpcError as error:
            raise _answer_for(error, error_detail(error)) from None
        except MovementFailed as error:
            raise _answer_for(error, error.detail) from None


def _answer_for(error: grpc.aio.AioRpcError | MovementFailed, detail: ErrorDetail | None) -> Answer:
    """The ledger's ErrorInfo names the reason; without one, the status code
    says whether the ledger was unreachable or too slow."""
    if detail is not None:
        code, _ = codes.code_of(detail.reason)
        if detail.reason == "DEADLINE_EXCEEDED":
            metrics.LEDGER_DEADLINE_EXPIRIES.inc()
        return Answer(code, *field_params(detail.field))
    if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
        metrics.LEDGER_DEADLINE_EXPIRIES.inc()
        return Answer(codes.LEDGER_TIMEOUT)
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return Answer(codes.LEDGER_UNAVAILABLE)
    said = error.details() if isinstance(error, grpc.aio.AioRpcError) else str(error)
    log.error("ledger call failed: %s %s", error.code().name, said)
    return Answer(codes.INTERNAL_ERROR)


def field_params(field: str) -> tuple[str, ...]:
    """msgParams for a ledger field: TradeBoss's name for it."""
    if not field:
        return ()
    if field == "kind":  # the number is known as another kind of request
        return ("requestUniqueNo",)
    # A conflict names a TradeBoss field by its leaf (biz_type, not tradeboss.biz_type).
    name = TRADEBOSS_FIELD.get(field) or TRADEBOSS_FIELD.get(f"tradeboss.{field}", field)
    return (name,)
