"""Richer votes (harm category, reason) and identity-leak flags on battles (issue 11).

Written by hand from the models (arena/models.py); `alembic check` in the tests proves they match.

Revision ID: c9e1b7d6a009
Revises: b8d0a6c5f008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "c9e1b7d6a009"
down_revision: str | None = "b8d0a6c5f008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("battles", sa.Column("identity_leak", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("battles", sa.Column("identity_rules_version", sa.String(length=32), nullable=True))
    op.add_column("battle_answers", sa.Column("identity_match", sa.Text(), nullable=True))
    op.add_column("votes", sa.Column("harm_category", sa.String(length=40), nullable=True))
    op.add_column("votes", sa.Column("reason", sa.Text(), nullable=True))
    op.add_column("votes", sa.Column("reason_public", sa.Boolean(), server_default="false", nullable=False))
    op.add_column("votes", sa.Column("excluded_reason", sa.String(length=32), nullable=True))


def downgrade() -> None:
    op.drop_column("votes", "excluded_reason")
    op.drop_column("votes", "reason_public")
    op.drop_column("votes", "reason")
    op.drop_column("votes", "harm_category")
    op.drop_column("battle_answers", "identity_match")
    op.drop_column("battles", "identity_rules_version")
    op.drop_column("battles", "identity_leak")
