"""Reading the ledger's answer out of a failed call: the ErrorDetail that every
error status carries in its rich details (google.rpc.Status)."""

from __future__ import annotations

import grpc
from grpc_status import rpc_status

from .generated.ledger.v1 import ledger_pb2 as pb


def error_detail(error: grpc.aio.AioRpcError) -> pb.ErrorDetail | None:
    """The ledger's ErrorDetail (outcome, field, message), or None when the
    call failed before the ledger answered (unreachable, deadline)."""
    status = rpc_status.from_call(error)
    if status is None:
        return None
    for packed in status.details:
        detail = pb.ErrorDetail()
        if packed.Unpack(detail):
            return detail
    return None
