"""The arena in full (issue 11): turns, prompt sources, vote integrity, pairing weights and scores,
model health, binned style cells.

Drafted by autogenerate from the models, then completed by hand: the answers' primary key gains the
turn, and existing battles get their first turn and their answer time. `alembic check` in the tests
proves models and migrations match.

Revision ID: d1f2a3b4c010
Revises: c9e1b7d6a009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d1f2a3b4c010"
down_revision: str | None = "c9e1b7d6a009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "arena_model_health",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("failures_in_row", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_arena_model_health_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_arena_model_health")),
    )
    op.create_table(
        "arena_pair_scores",
        sa.Column("model_lo_id", sa.Integer(), nullable=False),
        sa.Column("model_hi_id", sa.Integer(), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_hi_id"],
            ["models.id"],
            name=op.f("fk_arena_pair_scores_model_hi_id_models"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["model_lo_id"],
            ["models.id"],
            name=op.f("fk_arena_pair_scores_model_lo_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_lo_id", "model_hi_id", name=op.f("pk_arena_pair_scores")),
    )
    op.create_table(
        "arena_pairing_weights",
        sa.Column("model_id", sa.Integer(), nullable=False),
        sa.Column("weight", sa.Float(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("updated_by", sa.String(length=64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["models.id"],
            name=op.f("fk_arena_pairing_weights_model_id_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_arena_pairing_weights")),
    )
    op.create_table(
        "style_cells",
        sa.Column("model_lo_id", sa.Integer(), nullable=False),
        sa.Column("model_hi_id", sa.Integer(), nullable=False),
        sa.Column("bin", sa.Integer(), nullable=False),
        sa.Column("lo_wins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("hi_wins", sa.Integer(), server_default="0", nullable=False),
        sa.Column("ties", sa.Integer(), server_default="0", nullable=False),
        sa.Column("both_bad", sa.Integer(), server_default="0", nullable=False),
        sa.Column("z_length", sa.Float(), server_default="0", nullable=False),
        sa.Column("z_headers", sa.Float(), server_default="0", nullable=False),
        sa.Column("z_lists", sa.Float(), server_default="0", nullable=False),
        sa.Column("z_bold", sa.Float(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["model_hi_id"], ["models.id"], name=op.f("fk_style_cells_model_hi_id_models")
        ),
        sa.ForeignKeyConstraint(
            ["model_lo_id"], ["models.id"], name=op.f("fk_style_cells_model_lo_id_models")
        ),
        sa.PrimaryKeyConstraint("model_lo_id", "model_hi_id", "bin", name=op.f("pk_style_cells")),
    )
    op.create_table(
        "battle_turns",
        sa.Column("battle_id", sa.Uuid(), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("prompt", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("regenerations", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(
            ["battle_id"], ["battles.id"], name=op.f("fk_battle_turns_battle_id_battles"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("battle_id", "turn", name=op.f("pk_battle_turns")),
    )
    op.create_table(
        "vote_flags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("detail", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["vote_id"], ["votes.id"], name=op.f("fk_vote_flags_vote_id_votes")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vote_flags")),
    )
    op.create_index(op.f("ix_vote_flags_vote_id"), "vote_flags", ["vote_id"], unique=False)
    op.create_table(
        "vote_reviews",
        sa.Column("vote_id", sa.Integer(), nullable=False),
        sa.Column("decision", sa.String(length=16), nullable=False),
        sa.Column("reviewer", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["vote_id"], ["votes.id"], name=op.f("fk_vote_reviews_vote_id_votes")),
        sa.PrimaryKeyConstraint("vote_id", name=op.f("pk_vote_reviews")),
    )
    op.add_column("battle_answers", sa.Column("turn", sa.Integer(), server_default="1", nullable=False))
    op.add_column("battle_answers", sa.Column("ttft_s", sa.Double(), nullable=True))
    op.drop_constraint("pk_battle_answers", "battle_answers", type_="primary")
    op.create_primary_key("pk_battle_answers", "battle_answers", ["battle_id", "turn", "side"])
    op.add_column(
        "battles",
        sa.Column(
            "prompt_source",
            sa.Enum("free", "pool", "attack", name="prompt_source", native_enum=False, length=16),
            server_default="free",
            nullable=False,
        ),
    )
    op.add_column("battles", sa.Column("attack", sa.String(length=40), nullable=True))
    op.add_column("battles", sa.Column("attack_seed", sa.Integer(), nullable=True))
    op.add_column("battles", sa.Column("pool_item", sa.String(length=120), nullable=True))
    op.add_column("battles", sa.Column("turns", sa.Integer(), server_default="1", nullable=False))
    op.add_column("battles", sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("battles", sa.Column("creator_hash", sa.String(length=64), nullable=True))
    op.add_column("battles", sa.Column("address_hash", sa.String(length=64), nullable=True))
    op.add_column("battles", sa.Column("pairing", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.create_index(op.f("ix_battles_creator_hash"), "battles", ["creator_hash"], unique=False)
    op.alter_column(
        "pair_counts",
        "dimension",
        existing_type=sa.VARCHAR(length=16),
        type_=sa.String(length=32),
        existing_nullable=False,
    )
    op.add_column("votes", sa.Column("idempotency_key", sa.String(length=80), nullable=True))
    op.add_column("votes", sa.Column("session_hash", sa.String(length=64), nullable=True))
    op.add_column("votes", sa.Column("address_hash", sa.String(length=64), nullable=True))
    op.add_column("votes", sa.Column("network_hash", sa.String(length=64), nullable=True))
    op.add_column("votes", sa.Column("read_s", sa.Double(), nullable=True))
    op.create_index("ix_votes_network_created", "votes", ["network_hash", "created_at"], unique=False)
    op.create_index(op.f("ix_votes_session_hash"), "votes", ["session_hash"], unique=False)
    op.create_unique_constraint(op.f("uq_votes_idempotency_key"), "votes", ["idempotency_key"])
    # Battles from before turns existed: their one prompt is turn 1.
    op.execute(
        "INSERT INTO battle_turns (battle_id, turn, prompt, created_at, finished_at, regenerations) "
        "SELECT id, 1, prompt, created_at, finished_at, 0 FROM battles"
    )
    op.execute("UPDATE battles SET answered_at = created_at WHERE status IN ('ready', 'voted')")


def downgrade() -> None:
    op.drop_constraint(op.f("uq_votes_idempotency_key"), "votes", type_="unique")
    op.drop_index(op.f("ix_votes_session_hash"), table_name="votes")
    op.drop_index("ix_votes_network_created", table_name="votes")
    op.drop_column("votes", "read_s")
    op.drop_column("votes", "network_hash")
    op.drop_column("votes", "address_hash")
    op.drop_column("votes", "session_hash")
    op.drop_column("votes", "idempotency_key")
    op.alter_column(
        "pair_counts",
        "dimension",
        existing_type=sa.String(length=32),
        type_=sa.VARCHAR(length=16),
        existing_nullable=False,
    )
    op.drop_index(op.f("ix_battles_creator_hash"), table_name="battles")
    op.drop_column("battles", "pairing")
    op.drop_column("battles", "address_hash")
    op.drop_column("battles", "creator_hash")
    op.drop_column("battles", "answered_at")
    op.drop_column("battles", "turns")
    op.drop_column("battles", "pool_item")
    op.drop_column("battles", "attack_seed")
    op.drop_column("battles", "attack")
    op.drop_column("battles", "prompt_source")
    op.drop_column("battle_answers", "ttft_s")
    op.execute("DELETE FROM battle_answers WHERE turn > 1")
    op.drop_constraint("pk_battle_answers", "battle_answers", type_="primary")
    op.create_primary_key("pk_battle_answers", "battle_answers", ["battle_id", "side"])
    op.drop_column("battle_answers", "turn")
    op.drop_table("vote_reviews")
    op.drop_index(op.f("ix_vote_flags_vote_id"), table_name="vote_flags")
    op.drop_table("vote_flags")
    op.drop_table("battle_turns")
    op.drop_table("style_cells")
    op.drop_table("arena_pairing_weights")
    op.drop_table("arena_pair_scores")
    op.drop_table("arena_model_health")
