"""Window rate limits per client, one rule for every action that has one (battles in server.limits,
votes in arena.votes, which count their hits in their own round trips).

A request hits two counters: its client's session, and its address, which may do ``address_factor``
times the session's limit since many people can share one address. It is refused (429) when either
count passes its limit.
"""

import math
import time
from collections.abc import Sequence

import psycopg

from core.errors import LibraError
from core.keys.repository import Hit, purge_counters

PURGE_AFTER_S = 2 * 86_400  # counters of clients gone this long are dropped (purge_when_due)


def rate_limited(message: str, retry_after_s: int, code: str = "rate_limited") -> LibraError:
    """429 with the seconds to wait in Retry-After (at least 1)."""
    return LibraError(message, status=429, code=code, headers={"Retry-After": str(max(1, retry_after_s))})


def client_buckets(action: str, session: str, address: str, limit: int, address_factor: int) -> list[tuple[str, int]]:
    """The counters one request of ``action`` hits, each with its limit; none when ``limit`` is 0 (off)."""
    if limit == 0:
        return []
    return [(f"{action}:session:{session}", limit), (f"{action}:addr:{address}", limit * address_factor)]


def refusal(action: str, buckets: Sequence[tuple[str, int]], hits: Sequence[Hit]) -> LibraError | None:
    """The 429 for a request whose ``hits`` (one per bucket, in order) passed a limit, else None."""
    for (_, most), hit in zip(buckets, hits, strict=True):
        if hit.count > most:
            return rate_limited(f"too many {action} from this client; try again in {hit.retry_after_s} s",
                                hit.retry_after_s)
    return None


def opens_window(hits: Sequence[Hit]) -> bool:
    """Whether a request's first hit began its client's window (a new client, or one come back)."""
    return bool(hits) and hits[0].count == 1


# A process purges at most this often. A public arena sees new visitors all the time, and purging whenever
# one opened a window cost a round trip on most battles and most vote batches (server.limits, arena.votes).
PURGE_EVERY_S = 60.0
_last_purge = [-math.inf]  # when this process last purged (time.monotonic)


async def purge_when_due(conn: psycopg.AsyncConnection, opened_window: bool) -> None:
    """Purges long-gone clients' counters (PURGE_AFTER_S) on `conn` when the caller's request opened a
    window (opens_window: counters accumulate only then) and this process has not purged for PURGE_EVERY_S."""
    now = time.monotonic()
    if not opened_window or now - _last_purge[0] < PURGE_EVERY_S:
        return
    _last_purge[0] = now  # claimed before the round trip: concurrent requests do not purge too
    await purge_counters(conn, PURGE_AFTER_S)
