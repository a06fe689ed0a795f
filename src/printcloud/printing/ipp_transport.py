"""Which IPP requests may arrive in plain HTTP (issue 14: "plain IPP is only for loopback
or when the operator allows it"; RFC 8011 §9 / RFC 8010 §8.2 security, RFC 7472 ipps).

IPP carries the user's password (HTTP Basic) and the documents themselves, so a queue
is reached over TLS (ipps://, HTTPS) from anywhere but the machine itself. A plain
request from another machine is refused with HTTP 426 Upgrade Required and
`Upgrade: TLS/1.2, HTTP/1.1` (RFC 2817 §4.2, RFC 9110 §15.5.22), before its body is
read or its credentials looked at, unless the operator sets `PRINTCLOUD_IPP_ALLOW_PLAIN`.

Who the client is, and whether it used TLS, is read from the connection, or from
X-Forwarded-For / X-Forwarded-Proto when the connection comes from a configured
proxy (`PRINTCLOUD_TRUSTED_PROXIES`: the nginx or HAProxy in front, which terminates
TLS). Forwarded headers from anyone else are not believed; and because such a
request did pass through something that forwards, its true client is unknown: it
is not taken for loopback (a balancer on the same host left out of the setting
would otherwise make every client look local).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from fastapi import Request

from printcloud.core.errors import UpgradeRequired
from printcloud.core.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED = ("x-forwarded-for", "x-forwarded-proto", "forwarded")


@dataclass(frozen=True)
class Transport:
    """How a request reached the service: its client (None: unknown) and its scheme."""

    client: IPAddress | None
    secure: bool
    via_proxy: bool


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(e, strict=False) for e in entries)


@lru_cache(maxsize=4096)  # a client's address is parsed once, not at every request
def _address(text: str | None) -> IPAddress | None:
    if not text:
        return None
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:port" (RFC 7239 style)
        text = text[1 : text.index("]")]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: IPAddress | None, proxies: tuple[IPNetwork, ...]) -> bool:
    return address is not None and any(address in net for net in proxies)


def transport_of(
    *,
    peer: str | None,
    scheme: str,
    headers: dict[str, str],
    trusted_proxies: Sequence[str],
) -> Transport:
    """The client and scheme of a request from `peer` with these (lower-case) headers."""
    proxies = _networks(tuple(trusted_proxies))
    address = _address(peer)
    forwarded = any(name in headers for name in _FORWARDED)
    if not _trusted(address, proxies):
        if forwarded:
            # Forwarded by something that is not a configured proxy: whoever sent the
            # request to it is unknown, and its headers are not believed.
            return Transport(client=None, secure=scheme == "https", via_proxy=True)
        return Transport(client=address, secure=scheme == "https", via_proxy=False)
    if not forwarded:
        return Transport(client=address, secure=scheme == "https", via_proxy=False)
    # The client is the nearest address in X-Forwarded-For that is not a proxy of ours
    # (each proxy appends the address it was called from); the scheme is what the
    # nearest proxy says it was asked with.
    client: IPAddress | None = None
    hops = [h for h in headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        client = _address(hop)
        if not _trusted(client, proxies):
            break
    if not hops:
        client = None
    protos = [p.strip().lower() for p in headers.get("x-forwarded-proto", "").split(",")]
    proto = protos[-1] if protos[-1] else scheme
    return Transport(client=client, secure=proto == "https", via_proxy=True)


def plain_allowed(transport: Transport, *, allow_plain: bool) -> bool:
    """TLS, a loopback client, or the operator's `PRINTCLOUD_IPP_ALLOW_PLAIN`."""
    if transport.secure or allow_plain:
        return True
    return transport.client is not None and transport.client.is_loopback


def require_transport(request: Request, settings: Settings) -> None:
    """The endpoint's check (`ipp_routes.ipp_request`): UpgradeRequired (426) for a plain
    request the policy refuses."""
    transport = transport_of(
        peer=request.client.host if request.client else None,
        scheme=request.scope.get("scheme", "http"),  # what request.url reads, unparsed
        # A header given on several lines is one list (HAProxy's `option forwardfor`
        # adds its own X-Forwarded-For line after the client's).
        headers={
            name: ", ".join(request.headers.getlist(name))
            for name in _FORWARDED
            if name in request.headers
        },
        trusted_proxies=settings.trusted_proxies,
    )
    if plain_allowed(transport, allow_plain=settings.ipp_allow_plain):
        return
    raise UpgradeRequired(
        "plain IPP (http) is served to this machine's own clients only: use the queue's "
        "ipps:// URI (IPP over TLS)"
    )
