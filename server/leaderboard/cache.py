"""The latest leaderboard, rendered once per version and served as bytes.

`GET /api/v1/leaderboard` used to read the snapshot row (its JSONB payload parsed into Python objects),
validate it through `LeaderboardOut` and serialise it again on every request: about 0.05x the requests/s of
`/healthz` for a 50-model board (benchmarks/frontend.py). Here a process keeps the response bytes and the
ETag of the latest version, and learns of a newer one by itself, so that it stays correct when several API
processes share one database:

- at most once per `interval_s` (1 s), a request checks the latest version id (an index-only look-up); one
  check at a time: while it runs, the other requests serve the cached bytes. Only a new id costs the full
  read and the rendering. Staleness bound: a snapshot committed at time t is served by every process
  from the first request after t + interval_s (plus that one check's own duration).
- a snapshot written through this process's engine (the in-process worker, or a test calling the job
  function) marks the cache stale as soon as its connection goes back to the pool, i.e. after the commit,
  so that the writer's process reads its own write at once.

If the version check fails (the database is down) and bytes are cached, they are served and the failure is
logged once until a check succeeds again; with nothing cached the caller gets a 503 with the error shape.
The cache never looks inside the rows: whatever `payload()` stored is what `LeaderboardOut` carries.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.db import transaction
from core.errors import LibraError
from server.leaderboard import repository
from server.leaderboard.models import LeaderboardSnapshot
from server.leaderboard.schemas import LeaderboardOut

log = logging.getLogger(__name__)

CHECK_INTERVAL_S = 1.0
CHECK_TIMEOUT_S = 2.0  # a hung database must not hold the one check (and a cold cache's callers) for long
_WRITES = tuple(f"{verb} {LeaderboardSnapshot.__tablename__}"
                for verb in ("INSERT INTO", "UPDATE", "DELETE FROM"))
_WROTE = "libra.leaderboard.wrote"  # prefix of a pooled connection's info key: it wrote a snapshot in this checkout


@dataclass(frozen=True)
class Rendered:
    """One version as served: the exact bytes of its `LeaderboardOut` JSON and its quoted ETag."""

    version: int | None
    etag: str | None  # None for the empty board (no snapshot yet): nothing to revalidate against
    body: bytes


def render(snapshot: LeaderboardSnapshot | None) -> Rendered:
    """The same bytes FastAPI's `response_model=LeaderboardOut` produced (pydantic's JSON serialiser)."""
    if snapshot is None:
        out = LeaderboardOut(version=None, created_at=None, trigger=None, models=[], config={})
        return Rendered(None, None, out.model_dump_json().encode())
    out = LeaderboardOut(version=snapshot.id, created_at=snapshot.created_at, trigger=snapshot.trigger,
                         models=snapshot.payload["models"], config=snapshot.config)
    return Rendered(snapshot.id, f'"{snapshot.etag}"', out.model_dump_json().encode())


def etag_matches(if_none_match: str | None, etag: str | None) -> bool:
    """If-None-Match by weak comparison (RFC 9110 13.1.2): a list of tags, `W/` prefixes, or `*`."""
    if not if_none_match or etag is None:
        return False
    tags = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags


class LeaderboardCache:
    """One per app process; built with the runtime's engine and sessions."""

    def __init__(self, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], *,
                 interval_s: float = CHECK_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.sessions = engine, sessions
        self.interval_s, self._clock = interval_s, clock
        self._rendered: Rendered | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()
        self._failing = False  # the last check failed (logged once, until one succeeds)
        self._invalidations = 0  # a check that overlapped one must not mark the cache fresh
        self._watch_own_writes(engine)

    def invalidate(self) -> None:
        """The next request checks the database (whatever the interval)."""
        self._checked_at = float("-inf")
        self._invalidations += 1

    async def current(self) -> Rendered:
        rendered = self._rendered
        if rendered is not None and (self._fresh() or self._lock.locked()):
            return rendered  # fresh enough, or another request is checking right now
        async with self._lock:
            if self._rendered is not None and self._fresh():
                return self._rendered  # checked while this request waited for the lock
            if self._rendered is None and self._failing and self._fresh():
                raise _unavailable()  # just failed: no second try within the interval
            return await self._check()

    def _fresh(self) -> bool:
        return self._clock() - self._checked_at < self.interval_s

    async def _check(self) -> Rendered:
        started, invalidations = self._clock(), self._invalidations
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                rendered = await self._load()
        except Exception:  # any failure to read: serve what is cached, or say the board is unavailable
            self._checked_at = started
            if not self._failing:
                log.exception("leaderboard.cache.check_failed", extra={"cached": self._rendered is not None})
            self._failing = True
            if self._rendered is None:
                raise _unavailable() from None
            return self._rendered
        if self._failing:
            log.info("leaderboard.cache.check_recovered", extra={"version": rendered.version})
        self._rendered, self._failing = rendered, False
        if invalidations == self._invalidations:  # else a write committed meanwhile: check again next time
            self._checked_at = started
        return rendered

    async def _load(self) -> Rendered:
        async with transaction(self.sessions) as session:
            latest = await session.scalar(select(LeaderboardSnapshot.id).order_by(LeaderboardSnapshot.id.desc())
                                          .limit(1))
            if self._rendered is not None and latest == self._rendered.version:
                return self._rendered
            # A new version (or the first read): the row, then the rendering, off the hot path of others.
            snapshot = await repository.get(session, latest) if latest is not None else None
            return render(snapshot)

    def _watch_own_writes(self, engine: AsyncEngine) -> None:
        """Per engine (not global): flag a connection that wrote a snapshot; when it goes back to the pool,
        after its commit or rollback, mark the cache stale (a spurious recheck after a rollback is harmless)."""
        sync_engine = engine.sync_engine
        wrote = f"{_WROTE}.{id(self)}"  # a key per cache: several caches may watch one engine (tests do)

        def after_execute(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith(_WRITES):
                conn.info[wrote] = True

        def checkin(_dbapi: Any, record: Any) -> None:
            if record is not None and record.info.pop(wrote, False):
                self.invalidate()

        event.listen(sync_engine, "after_cursor_execute", after_execute)
        event.listen(sync_engine, "checkin", checkin)


def _unavailable() -> LibraError:
    return LibraError("the leaderboard cannot be read right now; try again shortly", status=503,
                      code="leaderboard_unavailable")
