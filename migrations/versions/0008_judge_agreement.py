"""Each refusal judge version's measured agreement with the gold set (issue 10).

Written by hand from the models (evaluation/models.py); `alembic check` in the tests proves they match.

Revision ID: b8d0a6c5f008
Revises: a7c9f5b4e007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "b8d0a6c5f008"
down_revision: str | None = "a7c9f5b4e007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "eval_judge_agreements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("judge_version", sa.Text(), nullable=False),
        sa.Column("gold_version", sa.String(length=32), nullable=False),
        sa.Column("rubric_version", sa.String(length=32), nullable=False),
        sa.Column("n_items", sa.Integer(), nullable=False),
        sa.Column("n_abstained", sa.Integer(), nullable=False),
        sa.Column("heldout_accuracy", sa.Float(), nullable=True),
        sa.Column("heldout_kappa", sa.Float(), nullable=True),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_eval_judge_agreements")),
        sa.UniqueConstraint("judge_version", "gold_version", name="uq_judge_agreement_version"),
    )


def downgrade() -> None:
    op.drop_table("eval_judge_agreements")
