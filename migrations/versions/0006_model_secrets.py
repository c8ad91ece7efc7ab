"""Models keep the API key of their endpoint encrypted (core.secrets), apart from their config.

Written by hand from the model (core/registry/models.py); `alembic check` in the tests proves they match.
OpenAI-compatible models submitted before this revision with a submitter key get `egress: "public"`:
from now on only admin-registered models may reach private networks.

Revision ID: f6b8e4a3d006
Revises: e5a7d3f2c005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "f6b8e4a3d006"
down_revision: str | None = "e5a7d3f2c005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("models", sa.Column("api_key_encrypted", sa.Text(), nullable=True))
    op.execute(
        """
        UPDATE models SET config = config || '{"egress": "public"}'::jsonb
        WHERE backend_kind = 'openai'
          AND submitted_by IN (SELECT id FROM api_keys WHERE scope <> 'admin')
        """
    )


def downgrade() -> None:
    # Older code forbids unknown config keys; models that had a key value lose it (re-register them).
    op.execute("UPDATE models SET config = config - 'egress'")
    op.drop_column("models", "api_key_encrypted")
