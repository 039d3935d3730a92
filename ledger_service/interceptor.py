"""What every call of the ledger service shares, around the servicer: the
caller's trace and deadline, the error mapping (LedgerError -> a gRPC status
with google.rpc.ErrorInfo), one log line and the metrics. Unary and streaming
methods alike; the servicer's methods only translate."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from ledger_client import pb, tracing
from ledger_client.errors import ERROR_DOMAIN

from . import metrics, validation
from .errors import LedgerError
from .outcomes import Outcome

log = logging.getLogger(__name__)

MAX_TRACE = 128
# Time kept back from the caller's deadline to send the answer.
ANSWER_MARGIN = 0.05
_SERVICE_PREFIX = f"/{pb.DESCRIPTOR.services_by_name['LedgerService'].full_name}/"

# The one table from error outcomes to gRPC status codes.
STATUS_OF_OUTCOME: dict[Outcome, grpc.StatusCode] = {
    Outcome.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.INVALID_AMOUNT: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.AMOUNT_SIGN_MISMATCH: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.TOO_MANY_DIGITS: grpc.StatusCode.INVALID_ARGUMENT,
    Outcome.ACCOUNT_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Outcome.REQUEST_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Outcome.HOLD_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Outcome.ACCOUNT_SCALE_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.USER_NAME_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.CANCEL_TARGET_MISMATCH: grpc.StatusCode.FAILED_PRECONDITION,
    Outcome.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Outcome.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    Outcome.ABORTED: grpc.StatusCode.ABORTED,
    Outcome.INTERNAL: grpc.StatusCode.INTERNAL,
}


@dataclass(frozen=True)
class CallContext:
    """The caller's trace id and the loop time by which the answer must be ready."""

    trace_id: str
    deadline: float


_CURRENT: contextvars.ContextVar[CallContext] = contextvars.ContextVar("ledger_call")


def current_call() -> CallContext:
    """The trace and deadline of the call being answered (set by the interceptor)."""
    return _CURRENT.get()


def error_status(error: LedgerError) -> grpc.Status:
    """A gRPC status whose rich details carry the standard google.rpc.ErrorInfo
    (reason: the outcome's name) and, when a field is at fault, BadRequest."""
    info = any_pb2.Any()
    info.Pack(
        error_details_pb2.ErrorInfo(
            reason=error.outcome.name,
            domain=ERROR_DOMAIN,
            metadata={"field": error.field} if error.field else {},
        )
    )
    details = [info]
    if error.field:
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=error.field, description=error.message
        )
        bad_request = any_pb2.Any()
        bad_request.Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        details.append(bad_request)
    code = STATUS_OF_OUTCOME.get(error.outcome, grpc.StatusCode.INTERNAL)
    status = status_pb2.Status(code=code.value[0], message=error.message, details=details)
    return rpc_status.to_status(status)


class CallInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, default_deadline: float) -> None:
        self._default_deadline = default_deadline
        # One wrapped handler per method, made on its first call (not per call).
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        method_path: str = handler_call_details.method
        wrapped = self._wrapped.get(method_path)
        if wrapped is not None:
            return wrapped
        handler = await continuation(handler_call_details)
        if handler is None or not method_path.startswith(_SERVICE_PREFIX):
            return handler  # health checks, reflection
        self._wrapped[method_path] = self._wrap(method_path.removeprefix(_SERVICE_PREFIX), handler)
        return self._wrapped[method_path]

    def _wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._stream(method, handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, method: str, behaviour: Any) -> Any:
        async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
            call = _Call.of(method, request, context, self._default_deadline)
            try:
                response = await behaviour(request, context)
                call.outcome = _outcome_of(response)
                return response
            except BaseException as error:
                await _abort(call, context, error)
                raise
            finally:
                call.done()

        return answer

    def _stream(self, method: str, behaviour: Any) -> Any:
        async def answer(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            call = _Call.of(method, request, context, self._default_deadline)
            try:
                async for item in behaviour(request, context):
                    yield item
            except BaseException as error:
                await _abort(call, context, error)
                raise
            finally:
                call.done()

        return answer


async def apply_item(
    method: str,
    request: Any,
    trace_id: str,
    deadline: float,
    behaviour: Callable[[Any], Awaitable[Any]],
) -> Any:
    """One item of a batch call (ApplyMovements), treated like a call of its
    own: its trace and deadline for current_call(), its log line and metrics.
    Returns the response, or the pb.MovementError its own call would have
    ended with."""
    call = _Call(method, request, _checked_trace(trace_id), deadline)
    try:
        with tracing.item_span(method, call.trace_id):
            response = await behaviour(request)
        call.outcome = _outcome_of(response)
        return response
    except Exception as error:
        failure = call.failure(error)
        assert failure is not None  # only a cancelled call has none
        return item_error(failure)
    finally:
        call.done()


def item_error(failure: LedgerError) -> pb.MovementError:
    """What an item of a batch call gets for the error status its own call
    would have ended with."""
    code = STATUS_OF_OUTCOME.get(failure.outcome, grpc.StatusCode.INTERNAL)
    return pb.MovementError(
        code=code.value[0],
        reason=failure.outcome.name,
        field=failure.field,
        message=failure.message,
    )


async def _abort(call: _Call, context: grpc.aio.ServicerContext, error: BaseException) -> None:
    """Send the caller the status for what went wrong (abort raises)."""
    if isinstance(error, grpc.aio.AbortError):
        return  # the servicer answered already
    failure = call.failure(error)
    if failure is not None and not context.done():
        status = error_status(failure)
        await context.abort(status.code, status.details, status.trailing_metadata)


def _id_of(request: Any) -> str:
    """The caller's id of a transfer or hold, for the log line."""
    return str(getattr(request, "transfer_id", "") or getattr(request, "hold_id", ""))


class _Call:
    """One call being answered: sets its context, and counts and logs it once."""

    def __init__(self, method: str, request: Any, trace_id: str, deadline: float) -> None:
        self.method = method
        self.started = time.perf_counter()
        self.outcome = "OK"
        self.trace_id = trace_id
        self.token = _CURRENT.set(CallContext(self.trace_id, deadline))
        account = getattr(request, "account", None) or getattr(request, "debit_account", None)
        self.company_id = account.company_id if account is not None else 0
        self.reference = (
            getattr(request, "request_id", "")
            or _id_of(request)
            or (account.customer if account is not None else "")
        )
        metrics.CALLS.started(method)

    @classmethod
    def of(
        cls, method: str, request: Any, context: grpc.aio.ServicerContext, default: float
    ) -> _Call:
        """A call from gRPC: its trace metadata, and the earlier of its own
        deadline (less the time to send the answer) and the default."""
        allowed = default
        remaining = context.time_remaining()
        if remaining is not None:
            allowed = min(allowed, remaining - ANSWER_MARGIN)
        deadline = asyncio.get_running_loop().time() + max(0.0, allowed)
        trace_id = _trace_of(context)
        tracing.tag_tradeboss_trace(trace_id)
        return cls(method, request, trace_id, deadline)

    def failure(self, error: BaseException) -> LedgerError | None:
        """What the caller is told went wrong (None: the call was cancelled)."""
        if isinstance(error, asyncio.CancelledError):
            self.outcome = "CANCELLED"
            return None
        if isinstance(error, LedgerError):
            failure = error
        elif isinstance(error, OSError | asyncpg.exceptions.PostgresConnectionError):
            # A stream runs outside run_transaction: a lost database is the same answer.
            log.warning("%s aborted: %r", self.method, error)
            failure = LedgerError(Outcome.UNAVAILABLE, "the database is unavailable")
        else:
            log.error("internal error in %s (trace %s)", self.method, self.trace_id, exc_info=error)
            failure = LedgerError(Outcome.INTERNAL, "internal error; see the ledger log")
        self.outcome = failure.outcome.name
        return failure

    def done(self) -> None:
        _CURRENT.reset(self.token)
        elapsed = time.perf_counter() - self.started
        metrics.CALLS.ended(self.method, self.outcome, elapsed)
        fields = {
            "method": self.method,
            "trace": self.trace_id,
            "company_id": self.company_id,
            "reference": self.reference,
            "outcome": self.outcome,
            "duration_ms": round(elapsed * 1000, 2),
        }
        log.info("%s %s", self.method, self.outcome, extra={"fields": fields})


# Every result enum's values by number, named without the enum's prefix
# (ADJUST_RESULT_APPLIED -> APPLIED), for logs and metrics.
_RESULT_NAMES = {
    enum.full_name: {
        value.number: value.name.removeprefix(enum.values[0].name.removesuffix("UNSPECIFIED"))
        for value in enum.values
    }
    for enum in pb.DESCRIPTOR.enum_types_by_name.values()
    if enum.name.endswith("Result")
}


def _outcome_of(response: Any) -> str:
    field = response.DESCRIPTOR.fields_by_name.get("result")
    if field is None or field.enum_type is None:
        return "OK"
    return _RESULT_NAMES[field.enum_type.full_name][response.result]


def _trace_of(context: grpc.aio.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "trace":
            trace = value if isinstance(value, str) else value.decode("utf-8", "replace")
            return _checked_trace(trace)
    return ""


def _checked_trace(trace: str) -> str:
    """A trace id as kept: "" when it is too long or holds control characters."""
    try:
        return validation.text(trace, "trace", MAX_TRACE, required=False)
    except LedgerError:
        return ""
