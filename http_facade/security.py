"""Who may call the webhooks: caller networks (X-Forwarded-For believed only
from trusted proxies), companies, and an optional HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping

from .settings import Network

SIGNATURE_HEADER = "X-Signature"


def caller_address(peer: str | None, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The caller's IP: the peer, or, when the peer is a trusted proxy, the
    right-most X-Forwarded-For hop that is not itself a trusted proxy. Every
    X-Forwarded-For line counts, in order, as one list: a proxy such as
    HAProxy appends a line of its own, and a caller may have sent one first."""
    if peer is None:
        return ""
    hops = [hop.strip() for line in forwarded_for for hop in line.split(",")]
    if not hops or not _within(peer, trusted):
        return peer
    for hop in reversed(hops):
        if not _within(hop, trusted):
            return hop  # an unparseable hop is not trusted either: it decides, and fails
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


def signed_message(company_id: str, timestamp: str, body: bytes) -> bytes:
    """What is signed: the companyId header, the timestamp header and the raw
    body, joined by newlines, so that a signature binds the tenant and the time
    (README, "Security": the exact bytes and a worked example)."""
    return company_id.encode() + b"\n" + timestamp.encode() + b"\n" + body


def signature(secret: bytes, company_id: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the signed message: what a signing gateway sends in X-Signature."""
    return hmac.new(secret, signed_message(company_id, timestamp, body), hashlib.sha256).hexdigest()


def signature_valid(
    secret: bytes,
    headers: Mapping[str, str],
    body: bytes,
    now_ms: int,
    window_seconds: float,
) -> bool:
    """A signature of these headers and body, with a timestamp within the window."""
    sent = headers.get(SIGNATURE_HEADER, "").strip().removeprefix("sha256=").lower()
    company_id, timestamp = headers.get("companyId", ""), headers.get("timestamp", "")
    if not sent or not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now_ms - int(timestamp)) > window_seconds * 1000:
        return False
    return hmac.compare_digest(sent, signature(secret, company_id, timestamp, body))


def main(argv: list[str] | None = None) -> int:
    """`python -m http_facade.security SECRET_FILE COMPANY_ID < body`: print the
    headers a signing gateway adds (a timestamp of now and its X-Signature)."""
    import sys
    import time

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print(main.__doc__, file=sys.stderr)
        return 2
    with open(args[0], "rb") as file:
        secret = file.read().strip()
    timestamp = str(int(time.time() * 1000))
    body = sys.stdin.buffer.read()
    print(f"timestamp: {timestamp}")
    print(f"{SIGNATURE_HEADER}: sha256={signature(secret, args[1], timestamp, body)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
