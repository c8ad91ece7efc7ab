"""Keep every version of the pair scores, so that a battle's draw record can name its version instead of
holding the scores of every pair (issue 11, item 5): n(n-1)/2 floats a battle, 102 kB of JSON at 100
models, about 150 GB a day at 1.5 M battles, against one copy per refresh now.

The primary key gains `version` (first, so the draw's "latest version" read is one index scan). Records
stored before keep their scores and still replay. Downgrade keeps the latest version only.

Revision ID: a5c6d7e8f013
Revises: f4b5c6d7e012
"""

from collections.abc import Sequence

from alembic import op

revision: str = "a5c6d7e8f013"
down_revision: str | None = "f4b5c6d7e012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "arena_pair_scores"
KEY = "pk_arena_pair_scores"  # passed through op.f when run: alembic's proxy exists only then


def upgrade() -> None:
    op.drop_constraint(op.f(KEY), TABLE, type_="primary")
    op.create_primary_key(op.f(KEY), TABLE, ["version", "model_lo_id", "model_hi_id"])


def downgrade() -> None:
    op.execute(f"DELETE FROM {TABLE} WHERE version < (SELECT max(version) FROM {TABLE})")
    op.drop_constraint(op.f(KEY), TABLE, type_="primary")
    op.create_primary_key(op.f(KEY), TABLE, ["model_lo_id", "model_hi_id"])
