"""Adjusts, cancels and balance reads from a caller with many in flight at
once (the HTTP facade): the ones waiting at the same time travel together in
one ApplyMovements call instead of one call each.

Batched by the rule of ledger_client/batching.py (sent at once while a slot
is free, never waiting for company). Each item keeps its own trace and timeout, and gets exactly the answer its own
Adjust, CancelAdjustment or GetBalance would have had: a response, or MovementFailed
carrying the error status that call would have ended with.
"""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from . import tracing
from .batching import Batcher, Waiting
from .errors import ErrorDetail
from .generated.ledger.v2 import ledger_pb2 as pb

# Time given to a batch call beyond its items' longest timeout: the ledger
# answers an item that ran out of time itself, with DEADLINE_EXCEEDED.
_CALL_MARGIN = 0.25


class MovementFailed(Exception):
    """One item's error: the gRPC status code its own call would have had and,
    when the ledger decided it, its ErrorDetail."""

    def __init__(self, code: grpc.StatusCode, detail: ErrorDetail | None, message: str) -> None:
        super().__init__(message)
        self.status_code = code
        self.detail = detail

    def code(self) -> grpc.StatusCode:
        return self.status_code


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class MovementSender:
    def __init__(self, stub: Any, max_size: int = 100, max_in_flight: int = 4) -> None:
        self._stub = stub
        self._batcher: Batcher[pb.MovementRequest, pb.MovementResponse] = Batcher(
            self._call, max_size, max_in_flight
        )

    async def adjust(
        self, request: pb.AdjustRequest, trace: str, seconds: float
    ) -> pb.AdjustResponse:
        answer = await self._send(pb.MovementRequest(adjust=request, trace_id=trace), seconds)
        return answer.adjust

    async def cancel(
        self, request: pb.CancelAdjustmentRequest, trace: str, seconds: float
    ) -> pb.CancelAdjustmentResponse:
        answer = await self._send(pb.MovementRequest(cancel=request, trace_id=trace), seconds)
        return answer.cancel

    async def balance(
        self, request: pb.GetBalanceRequest, trace: str, seconds: float
    ) -> pb.GetBalanceResponse:
        answer = await self._send(pb.MovementRequest(balance=request, trace_id=trace), seconds)
        return answer.balance

    async def _send(self, item: pb.MovementRequest, seconds: float) -> pb.MovementResponse:
        item.timeout.FromMilliseconds(int(seconds * 1000))
        loop = asyncio.get_running_loop()
        answer = self._batcher.enqueue(item, loop.time() + seconds, tracing.current_context())
        # A timer on the item's own future rather than asyncio.wait_for (a
        # task per call): giving up, or a caller cancelled, ends only this
        # future, never its batch; a future that ended is never sent, or its
        # late answer is dropped.
        timer = loop.call_later(seconds + _CALL_MARGIN, _give_up, answer)
        try:
            response = await answer
        finally:
            timer.cancel()
        if response.HasField("error"):
            error = response.error
            raise MovementFailed(
                _CODES.get(error.code, grpc.StatusCode.UNKNOWN),
                ErrorDetail(error.reason, error.field, error.message),
                error.message,
            )
        return response

    async def _call(self, batch: list[Waiting[pb.MovementRequest, pb.MovementResponse]]) -> None:
        timeout = max(w.deadline for w in batch) - asyncio.get_running_loop().time()
        request = pb.ApplyMovementsRequest(movements=[w.item for w in batch])
        try:
            with tracing.batch_span("ApplyMovements batch", [w.extra for w in batch]):
                response = await self._stub.ApplyMovements(
                    request, timeout=max(0.0, timeout) + _CALL_MARGIN
                )
        except grpc.aio.AioRpcError as error:
            for waiting in batch:
                waiting.settle(error=error)
            return
        for waiting, answer in zip(batch, response.movements, strict=True):
            waiting.settle(answer)


def _give_up(answer: asyncio.Future[pb.MovementResponse]) -> None:
    if not answer.done():
        answer.set_exception(
            MovementFailed(
                grpc.StatusCode.DEADLINE_EXCEEDED, None, "the ledger did not answer in time"
            )
        )
