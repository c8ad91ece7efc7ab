"""Keys expire and record their last use; fixed-window counters for rate limits and quotas.

Written by hand from the models (core/keys/models.py); `alembic check` in the tests proves they match.

Revision ID: a7c9f5b4e007
Revises: f6b8e4a3d006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a7c9f5b4e007"
down_revision: str | None = "f6b8e4a3d006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("api_keys", sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "rate_counters",
        sa.Column("bucket", sa.String(length=160), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_rate_counters")),
    )
    op.create_index(op.f("ix_rate_counters_window_start"), "rate_counters", ["window_start"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rate_counters_window_start"), table_name="rate_counters")
    op.drop_table("rate_counters")
    op.drop_column("api_keys", "last_used_at")
    op.drop_column("api_keys", "expires_at")
