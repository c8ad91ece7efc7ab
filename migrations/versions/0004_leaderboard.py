"""Leaderboard snapshots, and style features stored with each arena answer.

Written by hand from the models (server/leaderboard/models.py, arena/models.py); `alembic check`
in the tests proves they match.

Revision ID: c4d2a9e1b004
Revises: 33fbc575f4cd
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "c4d2a9e1b004"
down_revision: str | None = "33fbc575f4cd"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STYLE_COLUMNS = ("style_length", "style_headers", "style_lists", "style_bold")


def upgrade() -> None:
    op.create_table(
        "leaderboard_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(length=32), nullable=False),
        sa.Column("config", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("etag", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leaderboard_snapshots")),
    )
    op.create_index(op.f("ix_leaderboard_snapshots_created_at"), "leaderboard_snapshots", ["created_at"])
    # Answers written before this revision get zeros: their style is unknown, not "plain".
    for column in STYLE_COLUMNS:
        op.add_column("battle_answers", sa.Column(column, sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    for column in STYLE_COLUMNS:
        op.drop_column("battle_answers", column)
    op.drop_index(op.f("ix_leaderboard_snapshots_created_at"), table_name="leaderboard_snapshots")
    op.drop_table("leaderboard_snapshots")
