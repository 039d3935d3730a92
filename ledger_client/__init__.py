"""The ledger's client package: what every caller (the facade, the `ledger`
CLI, the simulator, the bench, internal services) needs and nothing of the
server: the generated stubs (made from protos/ at build time), a channel with
TLS and tokens, and the decoding of the ledger's error details.

    from ledger_client import pb, pb_grpc, open_channel
"""

from __future__ import annotations

from .channel import ChannelSecurity, open_channel
from .errors import error_detail
from .generated.ledger.v1 import ledger_pb2 as pb
from .generated.ledger.v1 import ledger_pb2_grpc as pb_grpc

__all__ = ["ChannelSecurity", "error_detail", "open_channel", "pb", "pb_grpc"]
