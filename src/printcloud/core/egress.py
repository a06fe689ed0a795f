"""The egress policy: where the platform may connect when a tenant chose the address.

Tenants and their devices give the platform addresses to connect to: a printer's
push URL, the URL of a print job's data, their LDAP directory's host, later webhook
subscribers. Left alone, each of them is a way to make the platform reach its own
loopback ports, the cloud's metadata service or the office network behind it
(server-side request forgery). One policy decides for all of them:

- **Global unicast only.** An address passes when `ipaddress` calls it global and it is
  not multicast nor in the shared address space 100.64.0.0/10. An IPv6 address that
  carries an IPv4 address (IPv4-mapped `::ffff:0:0/96`, 6to4 `2002::/16`, NAT64
  `64:ff9b::/96`, Teredo) passes only when the IPv4 address inside it does too.
- **The operator's allow-list** (`PRINTCLOUD_EGRESS_ALLOW`: CIDRs and host names,
  comma-separated) is the only way to a private address. A name on the list may
  resolve anywhere; development and the tests list loopback.
- **Checked twice, pinned once.** A URL is checked when it is saved, so the tenant
  hears at once that it will not be used; and the transports below resolve, check
  and connect in one step, to the very address that passed. A DNS answer that
  changes between the two (rebinding) is checked again, and a redirect is a new
  connection through the same check. Proxies from the environment are ignored:
  they would connect on the platform's behalf without the check.

`EgressRefused` is an `InvalidRequest` that names the field and the reason, so the
same error serves at save time (a 400) and at connect time (the caller records it).
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio
import httpcore
import httpx

from .errors import InvalidRequest
from .http import DEFAULT_TIMEOUT, USER_AGENT

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LOOPBACK = ("127.0.0.0/8", "::1/128")
#: How long a name may take to resolve before the connection counts as failed.
RESOLVE_TIMEOUT = 10.0


class EgressRefused(InvalidRequest):
    """An address the egress policy does not let the platform connect to."""

    error = "egress_refused"


def parse_allow_list(entries: Iterable[str]) -> tuple[tuple[IPNetwork, ...], frozenset[str]]:
    """Split `PRINTCLOUD_EGRESS_ALLOW`'s entries into networks and host names.

    Raises ValueError naming an entry that is neither a CIDR (or address) nor a host name.
    """
    networks: list[IPNetwork] = []
    names: set[str] = set()
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass
        name = _normalise_host(entry)
        labels = name.split(".")
        if not name or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum() for label in labels
        ):
            raise ValueError(f"egress allow-list entry {entry!r} is neither a CIDR nor a host name")
        names.add(name)
    return tuple(networks), frozenset(names)


def _normalise_host(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, NAT64, Teredo), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.teredo is not None:
        return address.teredo[1]  # the client's address; the server is the relay's
    return None


def _kind(address: IPAddress) -> str | None:
    """Why `address` is not global unicast, or None when it is."""
    if address.is_loopback:
        return "a loopback address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_link_local:
        return "a link-local address"
    if address in _SHARED:
        return "in the shared address space 100.64.0.0/10"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a global unicast address"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """Global unicast only, plus the operator's allow-list."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = field(default_factory=frozenset)

    @classmethod
    def from_entries(cls, entries: Iterable[str]) -> EgressPolicy:
        networks, names = parse_allow_list(entries)
        return cls(networks=networks, names=names)

    @staticmethod
    @functools.lru_cache(maxsize=16)
    def cached(entries: tuple[str, ...]) -> EgressPolicy:
        return EgressPolicy.from_entries(entries)

    @classmethod
    def loopback(cls) -> EgressPolicy:
        """Global unicast plus this machine's loopback (development and tests)."""
        return cls.from_entries(_LOOPBACK)

    # -- decisions (no connection, no packet) ----------------------------------------

    def _listed(self, address: IPAddress) -> bool:
        inner = embedded_ipv4(address)
        for network in self.networks:
            if address.version == network.version and address in network:
                return True
            if inner is not None and network.version == 4 and inner in network:
                return True
        return False

    def refusal(self, address: IPAddress | str) -> str | None:
        """Why the policy refuses `address`, or None when it may be reached."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if self._listed(ip):
            return None
        inner = embedded_ipv4(ip)
        if inner is not None:
            inner_reason = _kind(inner)
            if inner_reason is not None:
                return f"{ip} carries {inner}, {inner_reason}"
            if isinstance(ip, ipaddress.IPv6Address) and (
                ip.ipv4_mapped is not None or ip in _NAT64
            ):
                return None  # the IPv4 address inside is what is reached, and it is global
        reason = _kind(ip)
        if reason is not None:
            return f"{ip} is {reason}"
        return None

    def allows(self, address: IPAddress | str) -> bool:
        return self.refusal(address) is None

    def name_listed(self, host: str) -> bool:
        return _normalise_host(host) in self.names

    def decide(self, host: str, addresses: Iterable[str]) -> list[str]:
        """The addresses of `host` that may be reached; EgressRefused if any may not.

        One refused address refuses the host: a name that answers both a public and a
        private address is a rebinding attempt, or a mistake, either way not ours to try.
        """
        found = list(dict.fromkeys(addresses))
        if not found:
            raise EgressRefused(f"the host {host!r} has no address")
        if self.name_listed(host):
            return found
        for address in found:
            reason = self.refusal(address)
            if reason is not None:
                if address == _normalise_host(host):
                    raise EgressRefused(f"{reason}; the platform does not connect there")
                raise EgressRefused(
                    f"the host {host!r} resolves to {reason}; the platform does not connect there"
                )
        return found

    # -- resolution + decision -------------------------------------------------------

    def _literal(self, host: str) -> str | None:
        try:
            return str(ipaddress.ip_address(_normalise_host(host).split("%")[0]))
        except ValueError:
            return None

    def resolve(self, host: str, port: int) -> list[str]:
        """Resolve `host` (blocking) and return the addresses the policy lets through."""
        literal = self._literal(host)
        if literal is not None:
            return self.decide(literal, [literal])
        try:
            infos = socket.getaddrinfo(_normalise_host(host), port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"the host {host!r} cannot be resolved") from exc
        return self.decide(host, [str(info[4][0]).split("%")[0] for info in infos])

    async def aresolve(self, host: str, port: int, *, timeout: float | None = None) -> list[str]:
        """Resolve `host` without blocking the event loop; see `resolve`."""
        literal = self._literal(host)
        if literal is not None:
            return self.decide(literal, [literal])
        try:
            with anyio.fail_after(timeout or RESOLVE_TIMEOUT):
                infos = await anyio.getaddrinfo(
                    _normalise_host(host), port, type=socket.SOCK_STREAM
                )
        except TimeoutError as exc:
            raise EgressRefused(f"the host {host!r} did not resolve in time") from exc
        except (OSError, UnicodeError) as exc:
            raise EgressRefused(f"the host {host!r} cannot be resolved") from exc
        return self.decide(host, [str(info[4][0]).split("%")[0] for info in infos])

    def check_url(
        self, url: str, *, field: str, schemes: tuple[str, ...] = ("http", "https")
    ) -> None:
        """Save-time check of a URL a tenant gave: its form, then its host's addresses.

        Raises EgressRefused (or InvalidRequest for the form) naming `field`.
        """
        host, port = url_host_port(url, field=field, schemes=schemes)
        try:
            self.resolve(host, port)
        except EgressRefused as exc:
            raise EgressRefused(f"{field}: {exc.description}", field=field) from None


def url_host_port(
    url: str, *, field: str, schemes: tuple[str, ...] = ("http", "https")
) -> tuple[str, int]:
    """The host and port of an absolute URL with one of `schemes`, or InvalidRequest."""
    wanted = " or ".join(f"{s}://" for s in schemes)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest(f"{field} is not a valid URL: {exc}", field=field) from None
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise InvalidRequest(f"{field} must be an absolute {wanted} URL", field=field)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest(f"{field} must not carry a user name or password", field=field)
    default = {"http": 80, "https": 443, "ldap": 389, "ldaps": 636}.get(parts.scheme.lower(), 0)
    return parts.hostname, port or default


# -- pinned transports ------------------------------------------------------------------


class _GuardedAsyncBackend(httpcore.AsyncNetworkBackend):
    """Resolves, checks and connects to the checked address in one step."""

    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.aresolve(host, port, timeout=timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("the platform does not connect to local sockets for a tenant")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedSyncBackend(httpcore.NetworkBackend):
    def __init__(self, policy: EgressPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = self._policy.resolve(host, port)
        failure: Exception | None = None
        for address in addresses:
            try:
                return self._inner.connect_tcp(
                    address,
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise EgressRefused("the platform does not connect to local sockets for a tenant")


class GuardedAsyncTransport(httpx.AsyncHTTPTransport):
    """An httpx transport that connects only where `policy` allows, pinned to the
    address it checked (TLS still verifies the certificate against the URL's host)."""

    def __init__(self, policy: EgressPolicy, *, ssl_context: ssl.SSLContext | None = None):
        super().__init__(trust_env=False)
        # httpx offers no way to give its pool a network backend: build the pool here.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            max_connections=20,
            max_keepalive_connections=10,
            network_backend=_GuardedAsyncBackend(policy),
        )


class GuardedTransport(httpx.HTTPTransport):
    """The blocking twin of `GuardedAsyncTransport`."""

    def __init__(self, policy: EgressPolicy, *, ssl_context: ssl.SSLContext | None = None):
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or ssl.create_default_context(),
            max_connections=20,
            max_keepalive_connections=10,
            network_backend=_GuardedSyncBackend(policy),
        )


def async_client(policy: EgressPolicy, **kwargs: typing.Any) -> httpx.AsyncClient:
    """An httpx client for tenant-chosen URLs: guarded, no redirects, no env proxies."""
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.AsyncClient(
        headers=headers,
        transport=GuardedAsyncTransport(policy),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )


def client(policy: EgressPolicy, **kwargs: typing.Any) -> httpx.Client:
    """The blocking twin of `async_client`."""
    kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
    headers = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
    return httpx.Client(
        headers=headers,
        transport=GuardedTransport(policy),
        follow_redirects=False,
        trust_env=False,
        **kwargs,
    )
