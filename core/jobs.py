"""The procrastinate job app on the service's own Postgres. Tasks are registered by ``server.jobs``."""

from typing import Any

import procrastinate
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from core.db import libpq_url


def create_job_app(database_url: str) -> procrastinate.App:
    # A short pool timeout: with the database away, a worker fails (and is restarted by its supervisor)
    # within seconds instead of waiting 30 s for a connection.
    connector = procrastinate.PsycopgConnector(conninfo=libpq_url(database_url), timeout=5.0,
                                               pool_factory=_pool_checked_as_a_whole)
    return procrastinate.App(connector=connector)


def _pool_checked_as_a_whole(**kwargs: Any) -> AsyncConnectionPool:
    """procrastinate's pool, whose check on taking a connection out also sweeps the idle ones on a failure.

    After a database restart every idle connection is dead. psycopg_pool checks them one at a time and
    waits 1, 2, 4 s between failed checks, so with four dead ones the first job deferred or fetched ran
    past the 5 s timeout (measured: PoolTimeout). One failed check here replaces them all at once, and
    the retry a second later gets a fresh connection.
    """
    pool: AsyncConnectionPool

    async def check(conn: AsyncConnection) -> None:
        try:
            await AsyncConnectionPool.check_connection(conn)
        except Exception:
            await pool.check()
            raise

    pool = AsyncConnectionPool(**{**kwargs, "check": check})
    return pool
