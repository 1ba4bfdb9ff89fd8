"""Who is asking, and over what: the client's address and scheme, believing only our proxies.

The ledger expects TLS from a reverse proxy in front of it. The address a request comes from
is the socket's peer, unless that peer is one of ``TRUSTED_PROXIES`` (addresses or networks,
comma-separated: ``10.0.0.5,172.18.0.0/16``): then ``X-Forwarded-For`` is read from the right,
past every trusted hop, and the first address that is not ours is the client. Likewise
``X-Forwarded-Proto`` says whether the browser used https only when a trusted proxy sent it.
A header from anyone else is ignored: a client cannot choose its own address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TypeAlias

from starlette.types import Scope

Network: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network
Address: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_trusted_proxies(text: str | None) -> tuple[Network, ...]:
    """Return the networks of a comma-separated list of addresses or CIDR networks.

    Blank or None: no proxy is trusted. Raises ``ValueError`` naming the bad entry.
    """
    if text is None or not text.strip():
        return ()
    networks = []
    entries = [entry.strip() for entry in text.split(",")]
    for position, entry in enumerate(entries, start=1):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"entry {position} of {len(entries)} ({entry!r}) is not an IP address or network"
            ) from None
    return tuple(networks)


def trusted_proxies_valid(value: str | None) -> str | None:
    """``value`` unchanged once :func:`parse_trusted_proxies` accepts it (a pydantic validator)."""
    parse_trusted_proxies(value)
    return value


class ClientOrigin:
    """Answers a request's client address and whether it reached us over https."""

    def __init__(self, trusted: Iterable[Network] = ()) -> None:
        self._trusted = tuple(trusted)

    def _is_trusted(self, address: Address | None) -> bool:
        return address is not None and any(address in network for network in self._trusted)

    def _peer(self, scope: Scope) -> str:
        client = scope.get("client")
        return str(client[0]) if client else "unknown"

    def address(self, scope: Scope) -> str:
        """The client's address: the socket peer, or what trusted proxies forwarded."""
        peer = self._peer(scope)
        if not self._is_trusted(_ip(peer)):
            return peer
        hops = [hop.strip() for hop in _header(scope, b"x-forwarded-for").split(",")]
        client = peer
        for hop in reversed([h for h in hops if h]):
            address = _ip(hop)
            if address is None:
                # Only a trusted proxy appends on the right: garbage to the left of what it
                # wrote came from the client, so the last address read is the client.
                break
            client = str(address)
            if not self._is_trusted(address):
                break
        return client

    def is_https(self, scope: Scope) -> bool:
        """True when the browser used https: to us, or to a trusted proxy that says so."""
        if scope.get("scheme") == "https":
            return True
        if not self._is_trusted(_ip(self._peer(scope))):
            return False
        forwarded = _header(scope, b"x-forwarded-proto").split(",")[-1].strip().lower()
        return forwarded == "https"


def _header(scope: Scope, name: bytes) -> str:
    """Every ``name`` header of the request joined by commas (as a list header reads)."""
    values = [bytes(v).decode("latin-1") for k, v in scope.get("headers", []) if k == name]
    return ",".join(values)


def _ip(text: str) -> Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
