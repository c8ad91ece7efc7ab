"""The job queue's schema (procrastinate), applied through our own migrations.

procrastinate ships its full schema as one SQL text for new databases. It is pinned to 3.x in
pyproject.toml; a procrastinate upgrade that changes its schema gets a new revision here that
runs the SQL files of its own migrations folder (procrastinate/sql/migrations).

Revision ID: b7c1e0d2f001
Revises: a40d4e5b3bc1
"""

from collections.abc import Sequence

from alembic import op
from procrastinate.schema import SchemaManager

revision: str = "b7c1e0d2f001"
down_revision: str | None = "a40d4e5b3bc1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(SchemaManager.get_schema())


def downgrade() -> None:
    # Everything procrastinate created carries its prefix; functions first, their triggers go with them.
    op.execute(r"""
        DO $$ DECLARE r record; BEGIN
            FOR r IN SELECT oid::regprocedure AS fn FROM pg_proc WHERE proname LIKE 'procrastinate\_%' LOOP
                EXECUTE 'DROP FUNCTION ' || r.fn || ' CASCADE';
            END LOOP;
            FOR r IN SELECT tablename FROM pg_tables WHERE tablename LIKE 'procrastinate\_%' LOOP
                EXECUTE 'DROP TABLE ' || quote_ident(r.tablename) || ' CASCADE';
            END LOOP;
            FOR r IN SELECT typname FROM pg_type WHERE typname LIKE 'procrastinate\_%' AND typtype IN ('e', 'c') LOOP
                EXECUTE 'DROP TYPE ' || quote_ident(r.typname) || ' CASCADE';
            END LOOP;
        END $$
    """)
