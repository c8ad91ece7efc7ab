"""Database engine, sessions, the ORM base with a constraint naming convention, and what a lost database
raises (``outage_kind``: the web layer answers those with 503, background work logs them once)."""

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg_pool
from psycopg.pq import TransactionStatus
from sqlalchemy import DateTime, MetaData, event, make_url
from sqlalchemy import exc as sa_exc
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

from core.errors import LibraError

# Explicit names keep Alembic revisions stable across databases and reviewable in diffs.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: DateTime(timezone=True)}  # noqa: RUF012 - read by SQLAlchemy, never changed


def utcnow() -> datetime:
    return datetime.now(UTC)


def sqlalchemy_url(url: str) -> str:
    """Normalise any Postgres URL to the psycopg 3 dialect; reject anything else clearly."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise LibraError(f"LIBRA_DATABASE_URL is not a valid URL: {url!r}", code="bad_setting") from None
    if parsed.get_backend_name() not in {"postgresql", "postgres"}:
        raise LibraError("LIBRA_DATABASE_URL must be a postgresql:// URL", code="bad_setting")
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def libpq_url(url: str) -> str:
    """The same URL in the plain libpq form that procrastinate's psycopg connector takes."""
    return make_url(sqlalchemy_url(url)).set(drivername="postgresql").render_as_string(hide_password=False)


# A database that went away must fail a request in seconds, not hold it for the minutes a TCP connect to
# a host that drops packets takes (libpq waits forever by default; it takes whole seconds, 2 at least).
DEFAULT_CONNECT_TIMEOUT_S = 2
# A request waits this long for a pooled connection before it is told to come back (503), not 30 s.
POOL_TIMEOUT_S = 10


# Connections per pool, kept open between requests. A request that finds them all lent waits for one (up to
# POOL_TIMEOUT_S) rather than opening one more: an overflow connection is closed when it comes back, and
# Postgres forks a server process for every one opened.
POOL_SIZE = 10

# A connection back in the pool for less than this is lent again without a ping.
PING_AFTER_IDLE_S = 1.0


def create_engine(url: str, connect_timeout_s: int = DEFAULT_CONNECT_TIMEOUT_S) -> AsyncEngine:
    """The pool pings a connection that sat idle before lending it, so one broken by a database restart
    is replaced on its next use and the service recovers by itself when the database returns.

    It lends the connection returned last (LIFO): a connection's prepared statements and their plans are
    its own, and each new one plans the hot statements again on its first uses (the vote's claim takes
    1.9 ms to plan). In first-in-first-out order every request went round all the idle connections."""
    engine = create_async_engine(sqlalchemy_url(url), pool_size=POOL_SIZE, max_overflow=0,
                                 pool_timeout=POOL_TIMEOUT_S, pool_use_lifo=True,
                                 connect_args={"connect_timeout": connect_timeout_s})
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: AsyncEngine) -> None:
    """SQLAlchemy's ``pool_pre_ping``, for connections idle over PING_AFTER_IDLE_S or known broken only.

    Under load a connection is lent again within milliseconds, and the ping was a round trip on every
    checkout: a tenth of a vote's CPU. A connection used that recently was alive a moment ago; if the
    database went away since, the request it serves fails like one that was under way (503), and the
    connection is replaced.
    """
    pool, dialect = engine.sync_engine.pool, engine.sync_engine.dialect

    @event.listens_for(pool, "checkin")
    def returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def lent(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned_at = record.info.pop("returned_at", None)
        broken = getattr(getattr(dbapi_connection, "driver_connection", None), "closed", False)
        if not broken and returned_at is not None and time.monotonic() - returned_at < PING_AFTER_IDLE_S:
            return
        try:
            alive = dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool replaces this connection and tries again
            raise sa_exc.DisconnectionError(f"a pooled connection failed its ping: {type(error).__name__}") from error
        if not alive:
            raise sa_exc.DisconnectionError("a pooled connection failed its ping")


@asynccontextmanager
async def driver_connection(engine: AsyncEngine) -> AsyncIterator[psycopg.AsyncConnection]:
    """The driver's own connection, from the engine's pool, for the hot paths written as SQL text (the
    vote, a battle's creation and its answers).

    In autocommit mode with explicit BEGIN and COMMIT, so that psycopg's pipeline mode can send a
    statement and the COMMIT after it in one round trip. A transaction abandoned half-way is rolled back
    before the connection goes back to the pool, as it was (not in autocommit).
    """
    async with engine.connect() as pooled:
        raw: psycopg.AsyncConnection = (await pooled.get_raw_connection()).driver_connection
        await raw.set_autocommit(True)
        try:
            yield raw
        finally:
            if raw.info.transaction_status != TransactionStatus.IDLE and not raw.closed:
                await raw.execute("ROLLBACK")
            if not raw.closed:
                await raw.set_autocommit(False)


def engine_of(sessions: async_sessionmaker[AsyncSession]) -> AsyncEngine:
    """The engine a sessionmaker binds to (for the few paths that use the driver's connection directly)."""
    return sessions.kw["bind"]


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def transaction(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """One unit of work: commit at the edge, roll back on any error."""
    async with sessions() as session, session.begin():
        yield session


# SQLSTATEs of a server that is going away or not there yet (class 08: the connection itself).
_GONE_STATES = {"57P01", "57P02", "57P03", "53300"}


def outage_kind(error: BaseException) -> str | None:
    """A short name of the outage ``error`` reports (e.g. ``OperationalError 57P01``), or None if it is
    not one. Looks through causes, contexts and exception groups: drivers and job connectors wrap."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        kind = _own_kind(current)
        if kind is not None:
            return kind
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        if isinstance(current, sa_exc.DBAPIError) and current.orig is not None:
            pending.append(current.orig)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return None


def _own_kind(error: BaseException) -> str | None:
    if isinstance(error, (sa_exc.TimeoutError, psycopg_pool.PoolTimeout)):
        return "pool timeout"
    if isinstance(error, sa_exc.DBAPIError) and error.connection_invalidated:
        return f"{type(error).__name__} (connection invalidated)"
    if isinstance(error, psycopg.Error):  # psycopg wraps the socket's own errors (refused, reset) in these
        return _driver_kind(error)
    return None


def _driver_kind(error: psycopg.Error) -> str | None:
    state = error.sqlstate
    if state is None and isinstance(error, (psycopg.OperationalError, psycopg.InterfaceError)):
        return type(error).__name__  # raised by the client: refused, closed, timed out, lost mid-query
    if state is not None and (state.startswith("08") or state in _GONE_STATES):
        return f"{type(error).__name__} {state}"
    return None
