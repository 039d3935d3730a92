"""The ledger's client package: what every caller (the facade, the `ledger`
CLI, the simulator, the bench, internal services) needs and nothing of the
server: the generated stubs (made from protos/ at build time), a channel with
TLS and tokens, and the decoding of the ledger's error details and results.

    from ledger_client import pb, pb_grpc, open_channel
"""

from __future__ import annotations

from .channel import ChannelSecurity, open_channel
from .errors import ErrorDetail, conflicting_field, error_detail, result_name
from .feed import format_position, parse_position, watch_journal
from .generated.ledger.v2 import ledger_pb2 as pb
from .generated.ledger.v2 import ledger_pb2_grpc as pb_grpc

__all__ = [
    "ChannelSecurity",
    "ErrorDetail",
    "conflicting_field",
    "error_detail",
    "format_position",
    "open_channel",
    "parse_position",
    "pb",
    "pb_grpc",
    "result_name",
    "watch_journal",
]
