"""The egress policy of submitted endpoints: public addresses only, checked when each connection opens.

A submitter chooses the URL the workers call, so without a check a submission could make the
service call its own database, a cloud metadata service or any host on the workers' network.
Checking the URL when the model is registered is not enough: a name may resolve to a public address
then and to 127.0.0.1 later (DNS rebinding). So `GuardedNetworkBackend` resolves the host itself,
refuses the connection if *any* address is not public, and connects to the address it checked. TLS
still verifies the original name: httpcore passes the request's host as SNI, not the address.
Redirects are never followed by the backend's client, so an allowed host cannot bounce a call inward.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import typing
from collections.abc import Iterable, Sequence

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services: refused even inside an allow-listed network.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "100.100.100.200", "168.63.129.16", "fd00:ec2::254")
)

_KINDS: tuple[tuple[str, str], ...] = (
    ("unspecified", "is_unspecified"),
    ("loopback", "is_loopback"),
    ("link-local", "is_link_local"),
    ("multicast", "is_multicast"),
    ("private", "is_private"),
    ("reserved", "is_reserved"),
)


class EgressRefused(httpcore.ConnectError):
    """A connection the policy refused; httpx raises it as the cause of an `httpx.ConnectError`."""


def parse_networks(spec: str | Iterable[str]) -> tuple[IPNetwork, ...]:
    """CIDRs from a comma-separated string (LIBRA_EGRESS_ALLOW) or a list; raises ValueError."""
    parts = spec.split(",") if isinstance(spec, str) else spec
    return tuple(ipaddress.ip_network(p.strip(), strict=False) for p in parts if p.strip())


def refusal(address: IPAddress, allow: Sequence[IPNetwork] = ()) -> str | None:
    """Why the policy refuses this address, or None when it may be called."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1; 6to4 and Teredo addresses carry an IPv4 one too.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            return refusal(embedded, allow)
    if address in METADATA_ADDRESSES:
        return f"{address} is a cloud metadata address"
    if any(address.version == net.version and address in net for net in allow):
        return None
    for kind, test in _KINDS:
        if getattr(address, test):
            return f"{address} is {'an' if kind[0] in 'aeiou' else 'a'} {kind} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def check_host_literal(host: str, allow: Sequence[IPNetwork] = ()) -> str | None:
    """For a host that is an IP literal, why it is refused; None for names (checked when connecting)."""
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
    return refusal(address, allow)


async def resolve_checked(host: str, port: int, allow: Sequence[IPNetwork] = ()) -> list[str]:
    """Every address of `host`; raises EgressRefused if one of them is not allowed."""
    try:
        infos = await anyio.to_thread.run_sync(
            lambda: socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    for text in addresses:
        reason = refusal(ipaddress.ip_address(text), allow)
        if reason:
            raise EgressRefused(f"refused by the egress policy: {reason}")
    if not addresses:
        raise httpcore.ConnectError(f"cannot resolve {host}")
    return addresses


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks every host before connecting to the checked address."""

    def __init__(self, allow: Sequence[IPNetwork] = (), inner: httpcore.AsyncNetworkBackend | None = None) -> None:
        self._allow = tuple(allow)
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            with anyio.fail_after(timeout):
                addresses = await resolve_checked(host, port, self._allow)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout} s") from None
        error: Exception | None = None
        for address in addresses:  # the checked addresses only: never resolve the name again
            try:
                return await self._inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("refused by the egress policy: Unix sockets are not reachable")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a `GuardedNetworkBackend`; no proxy (a proxy would be checked, not the target)."""

    def __init__(self, allow: Sequence[IPNetwork] = (), limits: httpx.Limits | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        limits, tls = limits or httpx.Limits(), tls or httpx.create_ssl_context()
        super().__init__(limits=limits, verify=tls)
        # httpx has no parameter for httpcore's network backend: the pool is built again with one.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(allow),
        )


def guarded_client(allow: Sequence[IPNetwork] = (), limits: httpx.Limits | None = None,
                   tls: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """A client for submitted endpoints: checked connections, no redirects, no proxy from the environment.
    ``tls``: a TLS context to share (building one costs ~20 ms of CPU; inference.http_clients)."""
    return httpx.AsyncClient(transport=GuardedTransport(allow, limits, tls), follow_redirects=False,
                             trust_env=False)
