"""Who a client is: its anonymous session (the cookie set by ``server.middleware.SessionCookie``) and its
address, believed from X-Forwarded-For only behind a trusted proxy. What the service keeps of them is
their salted hashes (arena.integrity): the arena's votes and every rate-limit counter use those."""

import ipaddress
from functools import cache, lru_cache
from typing import Annotated

from fastapi import Depends, Request

from arena.integrity import VoterIdentity, identify, voter_salt
from core.addresses import ip_of

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@cache
def _networks(trusted: str) -> tuple[IpNetwork, ...]:
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in trusted.split(",") if part.strip())


@lru_cache(maxsize=4096)
def _trusted(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    ip = ip_of(address)
    return ip is not None and any(ip in network for network in networks)


def _without_port(hop: str) -> str:
    """A hop's address: some proxies write "203.0.113.7:51234" or "[2001:db8::1]:443", and a port that
    changes with every connection would make each connection a client of its own."""
    if hop.startswith("["):
        return hop[1:].partition("]")[0]
    address, colon, port = hop.rpartition(":")
    return address if colon and address.count(".") == 3 and port.isdigit() else hop


def client_address(request: Request, trusted_proxies: str) -> str:
    """The peer's address; behind a trusted proxy, the nearest X-Forwarded-For hop that is not one."""
    peer = request.client.host if request.client else "unknown"
    networks = _networks(trusted_proxies)
    if not networks or not _trusted(peer, networks):
        return peer
    hops = [_without_port(h.strip()) for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, networks):
            return hop
    return hops[0] if hops else peer


def client_session(request: Request) -> str:
    return request.state.client_session  # always set by the SessionCookie middleware


async def voter_identity(request: Request) -> VoterIdentity:  # async: no worker-thread hop (server.deps)
    app_state = request.app.state
    salt = getattr(app_state, "voter_salt", None)
    if salt is None:  # read once per app: from the setting or LIBRA_HOME/voter.salt
        salt = app_state.voter_salt = voter_salt(app_state.runtime.settings)
    settings = app_state.runtime.settings
    return identify(salt, client_session(request), client_address(request, settings.trusted_proxies))


VoterDep = Annotated[VoterIdentity, Depends(voter_identity)]
