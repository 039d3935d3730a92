"""Who may call the webhooks: caller networks (X-Forwarded-For believed only
from trusted proxies), companies, and an optional HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from .settings import Network

SIGNATURE_HEADER = "X-Signature"


def caller_address(
    peer: str | None, forwarded_for: str | None, trusted: tuple[Network, ...]
) -> str:
    """The caller's IP: the peer, or, when the peer is a trusted proxy, the
    right-most X-Forwarded-For address that is not itself a trusted proxy."""
    if peer is None:
        return ""
    if not forwarded_for or not _within(peer, trusted):
        return peer
    for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
        if not _within(hop, trusted):
            return hop
    return peer


def allowed(address: str, networks: tuple[Network, ...]) -> bool:
    """An empty allowlist allows everybody (the settings refuse that off loopback)."""
    return not networks or _within(address, networks)


def _within(address: str, networks: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def signature(secret: bytes, body: bytes) -> str:
    """Hex HMAC-SHA256 of the raw body: what a signing gateway sends in X-Signature."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def signature_valid(secret: bytes, body: bytes, header: str | None) -> bool:
    if not header:
        return False
    sent = header.strip().removeprefix("sha256=")
    return hmac.compare_digest(sent.lower(), signature(secret, body))
