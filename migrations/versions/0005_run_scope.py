"""Evaluation runs say whether they are full or a preview (fewer items than the configured sampling).

Written by hand from the model (evaluation/models.py); `alembic check` in the tests proves they match.
Runs that existed before this revision become "full": until now only `libra eval --limit` made smaller
runs, and the leaderboard treated them as full ones.

Revision ID: e5a7d3f2c005
Revises: c4d2a9e1b004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e5a7d3f2c005"
down_revision: str | None = "c4d2a9e1b004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "eval_runs",
        sa.Column("scope", sa.Enum("full", "preview", name="eval_run_scope", native_enum=False, length=16),
                  server_default="full", nullable=False),
    )


def downgrade() -> None:
    op.drop_column("eval_runs", "scope")
