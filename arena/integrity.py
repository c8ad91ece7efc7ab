"""Who voted, without knowing who: salted hashes of a client's session, address and address range.

The raw session id and address never reach the database. The salt is a secret of the deployment
(``LIBRA_ARENA_VOTER_SALT``, else generated once into ``LIBRA_HOME/voter.salt``); without it a hash
cannot be tied back to an address by trying them all.
"""

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass
from functools import lru_cache

from core.addresses import ip_of
from core.secrets import home_secret
from core.settings import Settings


@dataclass(frozen=True)
class VoterIdentity:
    session_hash: str
    address_hash: str  # the client's address as one client: an IPv4 address, an IPv6 /64
    network_hash: str  # the address's range: /24 (IPv4) or /48 (IPv6), for bursts from one range


def voter_salt(settings: Settings) -> bytes:
    if settings.arena_voter_salt is not None:
        return settings.arena_voter_salt.get_secret_value().encode()
    return home_secret(settings, "voter.salt")


# An IPv6 subscriber gets a /64 at least, and its devices change their address within it every day or at
# will (privacy addresses): counted by its full address, one such client could drop its cookie and pass
# every per-address limit. A range is an IPv4 /24 or an IPv6 /48.
_CLIENT_PREFIX_V6 = 64
_RANGE_PREFIX = {4: 24, 6: 48}


@lru_cache(maxsize=4096)  # parsing and masking an address cost as much as the three hashes of a request
def client_of(address: str) -> tuple[str, str]:
    """The client an address stands for and its range: ("203.0.113.7", "203.0.113.0/24") or
    ("2001:db8:1:2::/64", "2001:db8:1::/48"). An IPv4 address in IPv6 form (a dual-stack socket's
    "::ffff:203.0.113.7") is that IPv4 address; what is not an address ("unknown") is its own client and
    range."""
    ip = ip_of(address)
    if ip is None:
        return address, address
    # Networks from the integer: a scoped address ("fe80::1%eth0") loses its scope, not its network.
    client = str(ip) if ip.version == 4 else str(ipaddress.ip_network((int(ip), _CLIENT_PREFIX_V6), strict=False))
    return client, str(ipaddress.ip_network((int(ip), _RANGE_PREFIX[ip.version]), strict=False))


def _hash(salt: bytes, kind: str, value: str) -> str:
    return hmac.new(salt, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def identify(salt: bytes, session_id: str, address: str) -> VoterIdentity:
    client, network = client_of(address)
    return VoterIdentity(_hash(salt, "session", session_id), _hash(salt, "address", client),
                         _hash(salt, "network", network))


# --- anomaly rules: a vote they flag is kept, held out of the ratings, and queued for an admin ------------

RULES_VERSION = "integrity-1"
ONE_SIDED_SHARE = 0.9  # a session picking one model in at least this share of its battles with it


@dataclass(frozen=True)
class VoteFacts:
    """What the rules look at, read in the vote's transaction (before this vote is stored)."""

    words: int  # words of the answers the voter just read (the latest turn, both sides)
    read_s: float | None  # seconds since those answers were complete; None for battles from before
    network_votes: int  # votes from the voter's address range within the burst window, up to the rule's threshold
    sided: dict[int, tuple[int, int]]  # model id -> (the session's battles with it, the ones it picked it in)
    picks: frozenset[int]  # the models this vote picks: a win on helpfulness or on safety


@dataclass(frozen=True)
class Flag:
    rule: str
    detail: dict


def too_fast(facts: VoteFacts, words_per_s: float) -> Flag | None:
    needed = facts.words / words_per_s
    if facts.read_s is None or facts.read_s >= needed:
        return None
    return Flag("too_fast", {"read_s": round(facts.read_s, 3), "needed_s": round(needed, 3), "words": facts.words})


def one_sided(facts: VoteFacts, min_battles: int) -> list[Flag]:
    flags = []
    for model in sorted(facts.picks):
        battles, picked = facts.sided.get(model, (0, 0))
        battles, picked = battles + 1, picked + 1  # this vote included
        if battles >= min_battles and picked >= ONE_SIDED_SHARE * battles:
            flags.append(Flag("one_sided", {"model_id": model, "battles": battles, "picked": picked}))
    return flags


def burst(facts: VoteFacts, most: int, window_s: int) -> Flag | None:
    """More than ``most`` votes from one range in the window, this one included. The range's votes are
    counted up to ``most`` (the claim stops there), so a flag's ``votes`` is at most ``most + 1``."""
    votes = min(facts.network_votes, most) + 1
    return Flag("burst", {"votes": votes, "window_s": window_s}) if votes > most else None


def flags_for(facts: VoteFacts, settings: Settings) -> list[Flag]:
    """Every rule that holds this vote for review, each with its evidence; [] for an ordinary vote."""
    found = [too_fast(facts, settings.arena_read_words_per_s),
             *one_sided(facts, settings.arena_one_sided_votes),
             burst(facts, settings.arena_burst_votes, settings.arena_burst_window_s)]
    return [flag for flag in found if flag is not None]
