"""Each battle records the process that generates it ("host:pid:start"), so that a restart fails the
battles of a killed process at once instead of leaving them to housekeeping (issue 13, item 2).

Existing rows keep NULL: no process is known for them, and housekeeping still fails the stale ones.

Revision ID: f4b5c6d7e012
Revises: e3a4b5c6d011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f4b5c6d7e012"
down_revision: str | None = "e3a4b5c6d011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("battles", sa.Column("generator", sa.String(length=160), nullable=True))


def downgrade() -> None:
    op.drop_column("battles", "generator")
