"""The leaderboard's cached read path (server/leaderboard/cache.py) on a real database: the same bytes as the
uncached rendering, a new version within the staleness bound, 304s, two apps on one database, the empty
board, and a database that stops answering. A controllable clock stands in for waiting out the interval."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import make_url

from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.registry import repository as registry
from core.settings import Settings
from server.app import create_app
from server.deps import SessionDep
from server.leaderboard import repository
from server.leaderboard.cache import CHECK_INTERVAL_S, LeaderboardCache, etag_matches
from server.leaderboard.jobs import take_snapshot
from server.leaderboard.schemas import LeaderboardOut
from server.runtime import close_runtime, open_runtime
from server.seed import seed_defaults

BOARD = "/api/v1/leaderboard"
REFERENCE = "/api/v1/test-reference-leaderboard"


@pytest.fixture
def settings() -> Settings:  # as tests/server/test_leaderboard.py: a short suite, few bootstrap rounds
    return Settings(_env_file=None, database_url=None, eval_suite="smoke", leaderboard_bootstrap_rounds=200,
                    eval_min_items_per_category=1)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def pass_interval(self) -> None:
        self.now += CHECK_INTERVAL_S


async def reference(session: SessionDep) -> LeaderboardOut:
    """The endpoint as it was before the cache: a fresh read, validated and serialised by FastAPI."""
    snapshot = await repository.latest(session)
    if snapshot is None:
        return LeaderboardOut(version=None, created_at=None, trigger=None, models=[], config={})
    return LeaderboardOut(version=snapshot.id, created_at=snapshot.created_at, trigger=snapshot.trigger,
                          models=snapshot.payload["models"], config=snapshot.config)


def app_with_cache(runtime, clock: Clock) -> FastAPI:
    app = create_app(runtime.settings, "unused://", with_worker=False)
    # The lifespan is skipped: the fixture owns the runtime; its cache here runs on the test's clock.
    app.state.runtime = replace(runtime, leaderboard=LeaderboardCache(runtime.engine, runtime.sessions, clock=clock))
    app.add_api_route(REFERENCE, reference, response_model=LeaderboardOut)
    return app


@asynccontextmanager
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def board(runtime, clock) -> AsyncIterator[httpx.AsyncClient]:
    async with http(app_with_cache(runtime, clock)) as client:
        yield client


@pytest.fixture
async def elsewhere(db_url: str) -> AsyncIterator:
    """Sessions on an engine of their own: a writer in another process, whose commits this app's engine
    never sees (only its version check does)."""
    engine = create_engine(db_url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


@pytest.fixture
async def seeded(runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


async def publish(sessions, settings: Settings, retire: str | None = None) -> int:
    """A new snapshot through the real job function; retiring a model first changes the board."""
    if retire is not None:
        async with transaction(sessions) as session:
            await registry.retire(session, await registry.get_by_slug(session, retire))
    version = await take_snapshot(sessions, settings, "manual")
    assert version is not None
    return version


async def slugs(sessions) -> list[str]:
    async with transaction(sessions) as session:
        return [m.slug for m in await registry.list_all(session)]


async def test_cached_bytes_are_the_uncached_rendering(board, runtime, seeded, settings) -> None:
    version = await publish(runtime.sessions, settings)
    cached, fresh = await board.get(BOARD), await board.get(REFERENCE)
    assert cached.status_code == fresh.status_code == 200
    assert cached.content == fresh.content and cached.json()["version"] == version
    assert cached.headers["content-type"] == fresh.headers["content-type"] == "application/json"
    assert cached.headers["cache-control"] == "no-cache" and cached.headers["etag"].startswith('"')
    again = await board.get(BOARD)
    assert again.content == cached.content and again.headers["etag"] == cached.headers["etag"]


async def test_a_version_from_elsewhere_is_served_after_the_interval(board, clock, runtime, seeded, settings,
                                                                     elsewhere) -> None:
    first = await publish(runtime.sessions, settings)
    assert (await board.get(BOARD)).json()["version"] == first
    second = await publish(elsewhere, settings, retire=(await slugs(elsewhere))[0])
    clock.now += CHECK_INTERVAL_S / 2
    assert (await board.get(BOARD)).json()["version"] == first  # within the bound: still the cached version
    clock.now += CHECK_INTERVAL_S / 2
    served = await board.get(BOARD)
    assert served.json()["version"] == second
    assert served.content == (await board.get(REFERENCE)).content


async def test_this_process_reads_its_own_snapshot_at_once(board, runtime, seeded, settings) -> None:
    first = await publish(runtime.sessions, settings)
    assert (await board.get(BOARD)).json()["version"] == first
    second = await publish(runtime.sessions, settings, retire=(await slugs(runtime.sessions))[0])
    assert (await board.get(BOARD)).json()["version"] == second  # the clock never moved


async def test_if_none_match_answers_304_until_a_new_version(board, clock, runtime, seeded, settings,
                                                             elsewhere) -> None:
    await publish(runtime.sessions, settings)
    etag = (await board.get(BOARD)).headers["etag"]
    for sent in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        unchanged = await board.get(BOARD, headers={"If-None-Match": sent})
        assert unchanged.status_code == 304 and unchanged.content == b"" and unchanged.headers["etag"] == etag
    assert (await board.get(BOARD, headers={"If-None-Match": '"other"'})).status_code == 200
    await publish(elsewhere, settings, retire=(await slugs(elsewhere))[0])
    clock.pass_interval()
    changed = await board.get(BOARD, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag


def test_etag_matching_follows_weak_comparison() -> None:
    assert etag_matches('"a"', '"a"') and etag_matches('W/"a"', '"a"') and etag_matches(' "b" , "a"', '"a"')
    assert not etag_matches('"b"', '"a"') and not etag_matches(None, '"a"') and not etag_matches("*", None)


async def test_the_empty_board_then_its_first_snapshot(board, clock, runtime, seeded, settings, elsewhere) -> None:
    empty = await board.get(BOARD)
    assert empty.status_code == 200 and empty.json() == {"version": None, "created_at": None, "trigger": None,
                                                         "models": [], "config": {}}
    assert empty.content == (await board.get(REFERENCE)).content and "etag" not in empty.headers
    assert (await board.get(BOARD, headers={"If-None-Match": "*"})).status_code == 200  # nothing to match
    version = await publish(elsewhere, settings)
    clock.pass_interval()
    assert (await board.get(BOARD)).json()["version"] == version


async def test_two_apps_on_one_database_both_switch(runtime, seeded, settings, db_url, elsewhere) -> None:
    other_runtime = await open_runtime(settings, db_url)
    clocks = Clock(), Clock()
    try:
        async with http(app_with_cache(runtime, clocks[0])) as one, \
                http(app_with_cache(other_runtime, clocks[1])) as two:
            first = await publish(elsewhere, settings)
            assert [(await c.get(BOARD)).json()["version"] for c in (one, two)] == [first, first]
            second = await publish(elsewhere, settings, retire=(await slugs(elsewhere))[0])
            for c in clocks:
                c.pass_interval()
            answers = [await c.get(BOARD) for c in (one, two)]
            assert [a.json()["version"] for a in answers] == [second, second]
            assert answers[0].content == answers[1].content
            assert answers[0].headers["etag"] == answers[1].headers["etag"]
    finally:
        await close_runtime(other_runtime)


@asynccontextmanager
async def database_refusing_connections(db_url: str) -> AsyncIterator[None]:
    """The test's database stops answering: no new connection, the open ones cut. Restored after."""
    name = make_url(db_url).database
    admin = make_url(db_url).set(database="postgres").render_as_string(hide_password=False)
    with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))
    try:
        yield
    finally:
        with psycopg.connect(libpq_url(admin), autocommit=True) as conn:
            conn.execute(f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")


async def test_a_failing_check_serves_the_cached_version_and_logs_once(board, clock, runtime, seeded, settings,
                                                                       db_url, caplog) -> None:
    version = await publish(runtime.sessions, settings)
    cached = await board.get(BOARD)
    caplog.set_level(logging.INFO, logger="server.leaderboard.cache")
    async with database_refusing_connections(db_url):
        for _ in range(3):
            clock.pass_interval()
            served = await board.get(BOARD)
            assert served.status_code == 200 and served.content == cached.content
    failures = [r for r in caplog.records if r.getMessage() == "leaderboard.cache.check_failed"]
    assert len(failures) == 1
    clock.pass_interval()
    assert (await board.get(BOARD)).json()["version"] == version
    assert [r for r in caplog.records if r.getMessage() == "leaderboard.cache.check_recovered"]


async def test_no_cache_and_no_database_is_a_503_with_the_error_shape(board, db_url) -> None:
    async with database_refusing_connections(db_url):
        answer = await board.get(BOARD)
    assert answer.status_code == 503
    assert answer.json() == {"error": {"code": "leaderboard_unavailable", "field": None,
                                       "message": "the leaderboard cannot be read right now; try again shortly"}}


async def test_a_snapshot_committed_during_a_check_is_served_next(runtime, clock, seeded, settings) -> None:
    first = await publish(runtime.sessions, settings)
    cache = LeaderboardCache(runtime.engine, runtime.sessions, clock=clock)
    read = cache._load
    published: list[int] = []

    async def read_then_a_snapshot_commits() -> object:  # the check has read `first` when the write lands
        rendered = await read()
        published.append(await publish(runtime.sessions, settings, retire=(await slugs(runtime.sessions))[0]))
        return rendered

    cache._load = read_then_a_snapshot_commits
    assert (await cache.current()).version == first
    cache._load = read
    assert (await cache.current()).version == published[0]  # the clock never moved
