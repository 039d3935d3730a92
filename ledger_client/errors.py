"""Reading the ledger's answer out of a failed call: the google.rpc.ErrorInfo
(and, for bad input, google.rpc.BadRequest) every error status carries in its
rich details, and the per-operation result enums of an OK answer, both as the
reason names of ledger.v2 (ErrorReason, AdjustResult, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

# ErrorInfo.domain of every error the ledger itself decides.
ERROR_DOMAIN = "ledger.v2"
# EXISTS_WITH_DIFFERENT_<FIELD>: the request_id was seen with other content.
EXISTS_WITH_DIFFERENT = "EXISTS_WITH_DIFFERENT_"


@dataclass(frozen=True)
class ErrorDetail:
    """Why the ledger refused a call and wrote nothing."""

    # An ErrorReason name without its prefix: "INVALID_AMOUNT", "UNAVAILABLE"...
    reason: str
    # The request field at fault, in the proto's naming, or "".
    field: str
    # Human-readable English.
    message: str


def error_detail(error: grpc.aio.AioRpcError | grpc.Call) -> ErrorDetail | None:
    """The ledger's ErrorDetail, or None when the call failed before the
    ledger answered (unreachable, deadline, refused credentials)."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    info = error_details_pb2.ErrorInfo()
    bad_request = error_details_pb2.BadRequest()
    found = False
    for packed in status.details:
        if packed.Is(info.DESCRIPTOR):
            found = packed.Unpack(info) and info.domain == ERROR_DOMAIN
        elif packed.Is(bad_request.DESCRIPTOR):
            packed.Unpack(bad_request)
    if not found:
        return None
    return ErrorDetail(info.reason, info.metadata.get("field", ""), status.message)


def result_name(enum: Any, value: int) -> str:
    """A result value's name without its enum's prefix:
    result_name(pb.AdjustResult, pb.ADJUST_RESULT_APPLIED) == "APPLIED"."""
    prefix = enum.DESCRIPTOR.values[0].name.removesuffix("UNSPECIFIED")
    return str(enum.Name(value)).removeprefix(prefix)


def conflicting_field(name: str) -> str | None:
    """For EXISTS_WITH_DIFFERENT_<FIELD>: the field (proto naming), else None."""
    if name.startswith(EXISTS_WITH_DIFFERENT):
        return name.removeprefix(EXISTS_WITH_DIFFERENT).lower()
    return None
