"""Adjusts and cancels from a caller with many in flight at once (the HTTP
facade): the ones waiting at the same time travel together in one
ApplyMovements call instead of one call each.

A movement is sent at once when fewer than `max_in_flight` calls are running
(batching never waits for company); otherwise it waits for the first of them
to finish and goes with everything that queued meanwhile, up to `max_size`.
Each item keeps its own trace and timeout, and gets exactly the answer its own
Adjust or CancelAdjustment would have had: a response, or MovementFailed
carrying the error status that call would have ended with.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Any

import grpc

from . import tracing
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


@dataclass(slots=True)
class _Waiting:
    item: pb.MovementRequest
    deadline: float
    answer: asyncio.Future[pb.MovementResponse]
    # The caller's span, which the batch call's span links to (tracing on).
    span: Any


class MovementSender:
    def __init__(self, stub: Any, max_size: int = 100, max_in_flight: int = 4) -> None:
        self._stub = stub
        self._max_size = max_size
        self._max_in_flight = max_in_flight
        self._queue: deque[_Waiting] = deque()
        self._in_flight = 0
        self._senders: set[asyncio.Task[None]] = set()

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

    async def _send(self, item: pb.MovementRequest, seconds: float) -> pb.MovementResponse:
        loop = asyncio.get_running_loop()
        item.timeout.FromMilliseconds(int(seconds * 1000))
        answer: asyncio.Future[pb.MovementResponse] = loop.create_future()
        self._queue.append(_Waiting(item, loop.time() + seconds, answer, tracing.current_context()))
        if self._in_flight < self._max_in_flight:
            self._in_flight += 1
            sender = asyncio.create_task(self._drain())
            self._senders.add(sender)
            sender.add_done_callback(self._senders.discard)
        try:
            # Shielded: an item's caller giving up must not cancel its batch.
            response = await asyncio.wait_for(asyncio.shield(answer), seconds + _CALL_MARGIN)
        except TimeoutError:
            answer.cancel()
            raise MovementFailed(
                grpc.StatusCode.DEADLINE_EXCEEDED, None, "the ledger did not answer in time"
            ) from None
        if response.HasField("error"):
            error = response.error
            raise MovementFailed(
                _CODES.get(error.code, grpc.StatusCode.UNKNOWN),
                ErrorDetail(error.reason, error.field, error.message),
                error.message,
            )
        return response

    async def _drain(self) -> None:
        try:
            while batch := self._next_batch():
                await self._call(batch)
        finally:
            self._in_flight -= 1

    def _next_batch(self) -> list[_Waiting]:
        batch: list[_Waiting] = []
        while self._queue and len(batch) < self._max_size:
            waiting = self._queue.popleft()
            if not waiting.answer.done():  # its caller gave up before it left
                batch.append(waiting)
        return batch

    async def _call(self, batch: list[_Waiting]) -> None:
        timeout = max(w.deadline for w in batch) - asyncio.get_running_loop().time()
        request = pb.ApplyMovementsRequest(movements=[w.item for w in batch])
        try:
            with tracing.batch_span("ApplyMovements batch", [w.span for w in batch]):
                response = await self._stub.ApplyMovements(
                    request, timeout=max(0.0, timeout) + _CALL_MARGIN
                )
        except grpc.aio.AioRpcError as error:
            for waiting in batch:
                if not waiting.answer.done():
                    waiting.answer.set_exception(error)
            return
        for waiting, answer in zip(batch, response.movements, strict=True):
            if not waiting.answer.done():
                waiting.answer.set_result(answer)
