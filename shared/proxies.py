"""Who is calling: the client address, believed from X-Forwarded-For only as far as trusted proxies wrote it.

A client can send any X-Forwarded-For it likes; a proxy (nginx: `$proxy_add_x_forwarded_for`) appends the
address it saw. So the header is read from the right: each hop is believed only while the one who reported it
is a trusted proxy (WANGGE_TRUSTED_PROXIES), and the first address that is not a trusted proxy is the client.
A direct caller that is not a trusted proxy is itself the client, whatever it wrote.
"""
from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network, ip_address

from starlette.requests import Request

from shared.settings import trusted_networks

Networks = tuple[IPv4Network | IPv6Network, ...]


def _is_trusted(host: str, trusted: Networks) -> bool:
    try:
        address = ip_address(host.strip())
    except ValueError:
        return False  # not an address (a name, garbage): never a proxy we trust
    return any(address in network for network in trusted)


def client_address_from(peer: str | None, forwarded_for: list[str], trusted: Networks) -> str:
    """The client: the right-most hop not added by a trusted proxy, starting from the TCP peer.

    `forwarded_for` is every X-Forwarded-For header's comma-separated entries, in order. When every hop is a
    trusted proxy (a request made on the proxy's own machine), the left-most one is the client.
    """
    current = (peer or "").strip() or "unknown"
    hops = [h.strip() for header in forwarded_for for h in header.split(",") if h.strip()]
    while _is_trusted(current, trusted) and hops:
        current = hops.pop()
    return current


def client_address(request: Request) -> str:
    """The calling client's address for this request (for limits and logs; never a proof of identity)."""
    settings = request.app.state.runtime.settings
    trusted = _cached_networks(settings.trusted_proxies)
    peer = request.client.host if request.client else None
    return client_address_from(peer, request.headers.getlist("x-forwarded-for"), trusted)


def client_is_in(request: Request, spec: str) -> bool:
    """Whether this request's client (as client_address finds it) is one of the addresses or networks of `spec`
    (comma-separated, as WANGGE_TRUSTED_PROXIES)."""
    return _is_trusted(client_address(request), _cached_networks(spec))


_parsed: dict[str, Networks] = {}


def _cached_networks(spec: str) -> Networks:
    if spec not in _parsed:
        _parsed[spec] = trusted_networks(spec)
    return _parsed[spec]
