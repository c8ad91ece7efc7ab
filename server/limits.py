"""Per-client rate limits and per-key quotas, counted in Postgres so that they hold across processes.

A client is told apart twice (server.voters): by its anonymous session cookie and by its address, each
kept only as a salted hash. Each action counts in both buckets (core.keys.limits); the address may do
``rate_address_factor`` times a client's limit, since many people can share one address. A client that
drops its cookie gets a new one each time, and then only the address limit holds it.
"""

import time
from collections import Counter
from collections.abc import Callable

from fastapi import Depends, Request
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from arena.integrity import VoterIdentity
from core.db import driver_connection, engine_of
from core.keys import repository as counters
from core.keys.limits import client_buckets, opens_window, purge_when_due, rate_limited, refusal
from core.keys.models import ApiKey, KeyScope
from core.registry.models import Contestant
from core.settings import Settings
from evaluation.models import EvalRun, RunStatus
from server.voters import VoterDep

DAY_S = 86_400


def _rate_limit(action: str, limit_of: Callable[[Settings], int]) -> Callable:
    async def check(request: Request, voter: VoterDep) -> None:
        runtime = request.app.state.runtime
        settings = runtime.settings
        # By the client's salted hashes, as votes count: no address or session id is stored in a counter.
        buckets = client_buckets(action, voter.session_hash, voter.address_hash, limit_of(settings),
                                 settings.rate_address_factor)
        if not buckets:  # a limit of 0 is off
            return
        # One autocommit statement, before the action: a hit counts even when the action then fails, and
        # an address's counter row is locked for that statement alone.
        async with driver_connection(engine_of(runtime.sessions)) as conn:
            hits = await counters.count_hits(conn, [bucket for bucket, _ in buckets], settings.rate_window_s)
            await purge_when_due(conn, opens_window(hits))
        refused = refusal(action, buckets, hits)
        if refused is not None:
            raise refused

    return check


BattleLimit = Depends(_rate_limit("battles", lambda s: s.rate_battles))
# Votes count by the same rule (core.keys.limits) in arena.votes, inside their batches' round trips.


STREAM_RETRY_AFTER_S = 5  # what a client refused a stream is told to wait: streams end within a battle's time


class OpenStreams:
    """Battle streams open at once in this process, per client and per address.

    A stream holds a connection and a task for as long as its battle generates, and opening one reads
    the database; the rate limits count starts, not what stays open, so without this one client could
    hold thousands. Counted in memory: a stream lives and ends with its process (several API processes
    each allow as many)."""

    def __init__(self) -> None:
        self._open: Counter[str] = Counter()

    def take(self, voter: VoterIdentity, settings: Settings) -> Callable[[], None]:
        """A slot for one stream, or 429 `too_many_streams`; returns its release (safe to call twice)."""
        most = settings.arena_streams_per_client
        if most == 0:
            return lambda: None
        keys = [(f"session:{voter.session_hash}", most), (f"address:{voter.address_hash}",
                                                          most * settings.rate_address_factor)]
        for key, cap in keys:
            if self._open[key] >= cap:
                raise rate_limited(f"too many battle streams open from this client (at most {cap}); close one "
                                   "or try again when one ends", STREAM_RETRY_AFTER_S, code="too_many_streams")
        for key, _ in keys:
            self._open[key] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                for key, _ in keys:  # a key at zero goes: the counter holds only clients with open streams
                    self._open[key] -= 1
                    if self._open[key] <= 0:
                        del self._open[key]

        return release


class RequestBudget:
    """Requests per client address in this process: a bucket of ``burst`` requests, refilled at ``per_s`` a
    second; a request finding it empty waits (429) until one more has come back.

    The limits counted in Postgres hold what costs the most (battles, votes, submissions); this one bounds
    the rest a stranger can make the server do: every read of a battle, a model page or the leaderboard
    costs a request's CPU and often a database read. In memory, so it costs no round trip; per process, as
    the CPU it guards. It remembers at most ``most_clients`` addresses; past that the one seen longest ago
    is forgotten (it comes back with a full bucket)."""

    def __init__(self, per_s: float, burst: int, most_clients: int = 100_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s, self.burst, self.most_clients, self._clock = per_s, burst, most_clients, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # client: (requests left, when); oldest seen first

    def take(self, client: str) -> float:
        """0.0 when this request may go on; else the seconds until the client may make one."""
        now = self._clock()
        left, at = self._buckets.pop(client, (float(self.burst), now))
        left = min(float(self.burst), left + (now - at) * self.per_s)
        wait = 0.0 if left >= 1 else (1 - left) / self.per_s
        self._buckets[client] = (left - 1 if wait == 0.0 else left, now)  # re-inserted: now the newest
        if len(self._buckets) > self.most_clients:
            del self._buckets[next(iter(self._buckets))]
        return wait

    def __len__(self) -> int:
        return len(self._buckets)


def open_streams(request: Request) -> OpenStreams:
    """The app's stream counter, made on first use."""
    state = request.app.state
    streams = getattr(state, "open_streams", None)
    if streams is None:
        streams = state.open_streams = OpenStreams()
    return streams


async def _evals_in_flight(session: AsyncSession, key_id: int) -> int:
    query = (select(func.count()).select_from(EvalRun).join(Contestant, Contestant.id == EvalRun.model_id)
             .where(Contestant.submitted_by == key_id,
                    EvalRun.status.in_([RunStatus.queued, RunStatus.running])))
    return await session.scalar(query) or 0


async def check_submission_quota(session: AsyncSession, settings: Settings, key: ApiKey) -> None:
    """Models per UTC day and evaluations in flight, per key; admin keys have no quota.

    Counted in the request's transaction, so a submission that fails (bad config, taken slug) gives
    its quota back, and the counter's row lock makes one key's concurrent submissions take turns.
    """
    if key.scope is KeyScope.admin:
        return
    in_flight = await _evals_in_flight(session, key.id)
    if in_flight >= settings.quota_evals_in_flight:
        raise rate_limited(f"this key already has {in_flight} evaluations queued or running; "
                           "submit again when one has finished", 60)
    hit = await counters.hit(session, f"models:key:{key.id}", DAY_S)
    if hit.count > settings.quota_models_per_day:
        raise rate_limited(f"this key may submit {settings.quota_models_per_day} models per day",
                           hit.retry_after_s)
