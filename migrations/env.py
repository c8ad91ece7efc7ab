"""Alembic environment: a plain (sync) psycopg engine; the app's metadata gathered from every domain."""

import os

from alembic import context
from sqlalchemy import create_engine, pool

import arena.models  # noqa: F401  (registers the arena's tables)
import core.audit.models  # noqa: F401
import core.keys.models  # noqa: F401
import core.registry.models  # noqa: F401
import evaluation.models  # noqa: F401
import server.leaderboard.models  # noqa: F401
from core.db import Base, sqlalchemy_url

config = context.config
target_metadata = Base.metadata


def include_object(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001
    # procrastinate's tables are created by its own SQL inside our revisions, not by our models.
    return not (type_ == "table" and reflected and compare_to is None and name.startswith("procrastinate_"))


def run_migrations_online() -> None:
    # From code (core.migrate) the URL is set; from the alembic CLI it comes from the environment.
    url = config.get_main_option("sqlalchemy.url") or sqlalchemy_url(os.environ["LIBRA_DATABASE_URL"])
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_object=include_object,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
