"""What the web app and the in-process worker share, built once at start-up and closed at exit."""

import asyncio
from dataclasses import dataclass, field

import procrastinate
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from arena.orphans import close_orphans
from arena.relay import Relay
from arena.service import Arena, BattleLimits
from arena.streaming import StreamHub
from core.db import create_engine, create_sessionmaker, libpq_url
from core.settings import Settings
from inference import BackendPool
from server.jobs import build_job_app
from server.leaderboard.cache import LeaderboardCache


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    backends: BackendPool
    jobs: procrastinate.App
    # The latest leaderboard's bytes (server.leaderboard.cache): one per process, built with the runtime.
    leaderboard: LeaderboardCache
    # The arena's generations in this process: built with the runtime, cancelled (battles failed) at exit.
    hub: StreamHub = field(default_factory=StreamHub)
    # Readers of this process follow other processes' generations live, and the other way round (arena.relay).
    relay: Relay | None = None
    stop_notes: list[str] = field(default_factory=list)
    cleanups: set[asyncio.Future[None]] = field(default_factory=set)
    """Clean-ups of interrupted jobs (an evaluation putting itself back in the queue) still running."""
    """What interrupted jobs left to say when the process stops ("evaluation of X saved at ...")."""

    @property
    def battle_limits(self) -> BattleLimits:
        s = self.settings
        return BattleLimits(s.max_prompt_chars, s.battle_max_tokens, s.battle_timeout_s)

    @property
    def arena(self) -> Arena:
        return Arena(self.sessions, self.hub, self.backends, self.battle_limits, self.settings, self.relay)

    @property
    def job_context(self) -> dict[str, object]:
        """Handed to every job through procrastinate's ``additional_context``."""
        return {"sessions": self.sessions, "settings": self.settings, "backends": self.backends,
                "stop_notes": self.stop_notes, "cleanups": self.cleanups}


async def open_runtime(settings: Settings, database_url: str, *, relay: bool = True) -> Runtime:
    """``relay``: whether this process streams battles (API processes); a job worker has no use for it."""
    engine = create_engine(database_url, settings.database_connect_timeout_s)
    jobs = build_job_app(database_url, settings)
    await jobs.open_async()
    backends = BackendPool(max_engines=settings.max_engines, egress_allow=settings.egress_allow)
    sessions = create_sessionmaker(engine)
    await close_orphans(sessions)  # battles a killed process left generating fail now, before any request
    hub = StreamHub()
    relayed = Relay(libpq_url(database_url), hub) if relay else None
    if relayed is not None:
        await relayed.start()  # last: nothing after it can fail and leave its connection open
    return Runtime(settings, engine, sessions, backends, jobs, LeaderboardCache(engine, sessions), hub, relayed)


async def close_runtime(runtime: Runtime) -> None:
    await runtime.hub.aclose()  # first: its battles are marked failed while the database is still open
    if runtime.relay is not None:  # then other processes' readers get those battles' last events
        await runtime.relay.aclose()
    if runtime.cleanups:
        await asyncio.wait(set(runtime.cleanups), timeout=runtime.settings.stop_timeout_s / 2)
    await runtime.backends.aclose()
    await runtime.jobs.close_async()
    await runtime.engine.dispose()
