"""Shared fixtures: one embedded Postgres per test session, a fresh database per test.

The template database is migrated by Alembic once; each test gets ``CREATE DATABASE ... TEMPLATE``
(tens of milliseconds), so tests never see each other's rows and never need a mock database.
"""

import itertools
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import make_url

from core.db import libpq_url
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from core.settings import Settings
from tests.doubles import CannedBackendPoolForTests

TEMPLATE = "libra_template"
_counter = itertools.count()


def database_url(server_url: str, name: str) -> str:
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def scratch_root() -> Path:
    """Where tests put embedded Postgres homes: the run's own folder under scripts/test.sh, else /tmp.

    scripts/test.sh stops exactly the servers under LIBRA_TEST_ROOT at exit, never another run's.
    Outside /root on purpose: the embedded server opens read access on every parent folder.
    """
    return Path(os.environ.get("LIBRA_TEST_ROOT") or "/tmp")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="libra-test-", dir=scratch_root()) as home:
        with embedded_postgres(Path(home)) as url:
            with psycopg.connect(libpq_url(url), autocommit=True) as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {TEMPLATE}")
                conn.execute(f"CREATE DATABASE {TEMPLATE}")
            upgrade(database_url(url, TEMPLATE))
            yield url


@pytest.fixture
def db_url(pg_server: str) -> Iterator[str]:
    name = f"t_{os.getpid()}_{next(_counter)}"
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
    yield database_url(pg_server, name)
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def settings() -> Settings:
    # Tests vote the moment answers are in: the reading-time rule (arena.integrity) would hold every vote,
    # so it is off here; the integrity tests set it themselves.
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, arena_read_words_per_s=1e6)


@pytest.fixture
async def runtime(db_url: str, settings: Settings) -> AsyncIterator:
    """The app's runtime on a fresh database, with canned model answers (tests about the service)."""
    from server.runtime import close_runtime, open_runtime

    real = await open_runtime(settings, db_url)
    runtime = replace(real, backends=CannedBackendPoolForTests())
    try:
        yield runtime
    finally:
        await close_runtime(real)


@pytest.fixture
async def client(runtime) -> AsyncIterator[httpx.AsyncClient]:  # noqa: ANN001
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = runtime  # the lifespan is skipped: the fixture owns the runtime
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http
