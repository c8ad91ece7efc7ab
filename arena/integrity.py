"""Who voted, without knowing who: salted hashes of a client's session, address and address range.

The raw session id and address never reach the database. The salt is a secret of the deployment
(``LIBRA_ARENA_VOTER_SALT``, else generated once into ``LIBRA_HOME/voter.salt``); without it a hash
cannot be tied back to an address by trying them all.
"""

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass

from core.secrets import home_secret
from core.settings import Settings


@dataclass(frozen=True)
class VoterIdentity:
    session_hash: str
    address_hash: str
    network_hash: str  # the address's /24 (IPv4) or /48 (IPv6): bursts from one range


def voter_salt(settings: Settings) -> bytes:
    if settings.arena_voter_salt is not None:
        return settings.arena_voter_salt.get_secret_value().encode()
    return home_secret(settings, "voter.salt")


def network_of(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address  # not an address (e.g. "unknown"): its own range
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def _hash(salt: bytes, kind: str, value: str) -> str:
    return hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def identify(salt: bytes, session_id: str, address: str) -> VoterIdentity:
    return VoterIdentity(_hash(salt, "session", session_id), _hash(salt, "address", address),
                         _hash(salt, "network", network_of(address)))
