"""Battles, their two answers, the votes on them and the pair-outcome counts the ranking reads."""

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, CheckConstraint, Enum, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from arena.generator import this_process
from core.db import Base, utcnow


class BattleStatus(enum.StrEnum):
    generating = "generating"  # answers are being produced
    ready = "ready"  # both answers stored, waiting for a vote
    voted = "voted"
    failed = "failed"  # a side failed to answer; never votable
    expired = "expired"  # ready, but not voted on within the vote window; never votable


class PromptSource(enum.StrEnum):
    free = "free"  # the visitor's own words
    pool = "pool"  # "surprise me": drawn from the curated prompt pool
    attack = "attack"  # the visitor's words, rewritten by an attack transform


class AnswerStatus(enum.StrEnum):
    ok = "ok"
    error = "error"


class Verdict(enum.StrEnum):
    a = "a"
    b = "b"
    tie = "tie"
    both_bad = "both_bad"


def _enum(kind: type[enum.StrEnum], name: str) -> Enum:
    return Enum(kind, name=name, native_enum=False, length=16)


class Battle(Base):
    __tablename__ = "battles"
    __table_args__ = (CheckConstraint("model_a_id <> model_b_id", name="distinct_models"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    prompt: Mapped[str] = mapped_column(Text)
    status: Mapped[BattleStatus] = mapped_column(_enum(BattleStatus, "battle_status"), index=True)
    model_a_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    model_b_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    # The seed of the pair draw, so every random choice can be replayed.
    sampling_seed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    # An answer named its own model (arena.identity): the vote is kept, but out of the ratings.
    identity_leak: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    identity_rules_version: Mapped[str | None] = mapped_column(String(32))
    # Where the first prompt came from, and (attack mode) which transform rewrote it, with sampling_seed.
    prompt_source: Mapped[PromptSource] = mapped_column(_enum(PromptSource, "prompt_source"), default=PromptSource.free,
                                                        server_default="free")
    attack: Mapped[str | None] = mapped_column(String(40))
    attack_seed: Mapped[int | None] = mapped_column(Integer)  # the transform's own seed (previewed text)
    pool_item: Mapped[str | None] = mapped_column(String(120))
    turns: Mapped[int] = mapped_column(default=1, server_default="1")  # turns so far (battle_turns rows)
    # When the latest turn's answers were complete: the vote window and the reading-time check start here.
    answered_at: Mapped[datetime | None]
    # Salted hashes (arena.integrity) of the creating client's session and address; never the raw values.
    creator_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64))
    # How the pair was drawn (policy, weights version...), enough to replay the draw with sampling_seed.
    pairing: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    # The process that last wrote the row ("host:pid:start", arena.generator): while the battle is
    # generating, the one generating it, since a new battle, a next turn and a regeneration are all ORM
    # writes of the generating process. A restart on that host fails it at once if that process is gone.
    generator: Mapped[str | None] = mapped_column(String(160), default=this_process, onupdate=this_process)

    @property
    def model_pair(self) -> tuple[int, int]:
        """The two models' ids, lower first: how pair counts and style cells are keyed."""
        lo, hi = sorted((self.model_a_id, self.model_b_id))
        return lo, hi


class BattleTurn(Base):
    """One visitor prompt of a battle; both sides answer it, each seeing its own earlier answers."""

    __tablename__ = "battle_turns"

    battle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("battles.id", ondelete="CASCADE"), primary_key=True)
    turn: Mapped[int] = mapped_column(primary_key=True)  # 1, 2, ...
    prompt: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    regenerations: Mapped[int] = mapped_column(default=0, server_default="0")


class BattleAnswer(Base):
    __tablename__ = "battle_answers"

    battle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("battles.id", ondelete="CASCADE"), primary_key=True)
    turn: Mapped[int] = mapped_column(primary_key=True, default=1, server_default="1")
    side: Mapped[str] = mapped_column(String(1), primary_key=True)
    status: Mapped[AnswerStatus] = mapped_column(_enum(AnswerStatus, "answer_status"))
    text: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    completion_tokens: Mapped[int | None]
    latency_s: Mapped[float | None]
    ttft_s: Mapped[float | None]
    # Style covariates (arena.style), written with the answer, read by the leaderboard job.
    style_length: Mapped[int] = mapped_column(default=0, server_default="0")
    style_headers: Mapped[int] = mapped_column(default=0, server_default="0")
    style_lists: Mapped[int] = mapped_column(default=0, server_default="0")
    style_bold: Mapped[int] = mapped_column(default=0, server_default="0")
    # The answer's own words that named its model; server-side only, never in the API.
    identity_match: Mapped[str | None] = mapped_column(Text)


class Vote(Base):
    """Append-only: a database trigger rejects UPDATE and DELETE (see the migration)."""

    __tablename__ = "votes"

    id: Mapped[int] = mapped_column(primary_key=True)
    battle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("battles.id"), unique=True)
    helpfulness: Mapped[Verdict] = mapped_column(_enum(Verdict, "verdict"))
    safety: Mapped[Verdict | None] = mapped_column(_enum(Verdict, "verdict"))
    harm_category: Mapped[str | None] = mapped_column(String(40))  # a slug of HARM_CATEGORIES
    reason: Mapped[str | None] = mapped_column(Text)
    reason_public: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    # Why the vote stays out of the ratings ("identity_leak", "review"); None for a counted vote.
    excluded_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The client's Idempotency-Key: a retried request finds this vote instead of casting another.
    idempotency_key: Mapped[str | None] = mapped_column(String(80), unique=True)
    # Salted hashes (arena.integrity) of the voter's session, address and address range (/24, /48).
    session_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    address_hash: Mapped[str | None] = mapped_column(String(64))
    network_hash: Mapped[str | None] = mapped_column(String(64))
    read_s: Mapped[float | None]  # seconds between the last answer and the vote


Index("ix_votes_network_created", Vote.network_hash, Vote.created_at)


class VoteFlag(Base):
    """Why an anomaly rule held a vote for review (a vote may have several)."""

    __tablename__ = "vote_flags"

    id: Mapped[int] = mapped_column(primary_key=True)
    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))  # too_fast, one_sided, burst
    detail: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VoteReview(Base):
    """An admin's decision on a held vote; votes stay append-only, so the decision is its own row."""

    __tablename__ = "vote_reviews"

    vote_id: Mapped[int] = mapped_column(ForeignKey("votes.id"), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))  # approved (now counted) or rejected
    reviewer: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PairCount(Base):
    """Outcome counts per unordered pair (low id first) and vote dimension.

    Updated in the vote's own transaction, so the ranking reads a table whose size grows with
    the number of models squared, never with the number of votes.
    """

    __tablename__ = "pair_counts"

    # "helpfulness" or "safety", and per prompt source "helpfulness@attack" etc.
    dimension: Mapped[str] = mapped_column(String(32), primary_key=True)
    model_lo_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    model_hi_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    lo_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    hi_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    ties: Mapped[int] = mapped_column(default=0, server_default="0")
    both_bad: Mapped[int] = mapped_column(default=0, server_default="0")


class StyleCell(Base):
    """Helpfulness outcomes per model pair (low id first) and joint style bin (ranking.style), with
    the sums of the votes' style covariates: the style-controlled fit reads these, never the votes."""

    __tablename__ = "style_cells"

    model_lo_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    model_hi_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    bin: Mapped[int] = mapped_column(primary_key=True)
    lo_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    hi_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    ties: Mapped[int] = mapped_column(default=0, server_default="0")
    both_bad: Mapped[int] = mapped_column(default=0, server_default="0")
    # Sums over the cell's votes of each covariate, low model minus high model.
    z_length: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    z_headers: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    z_lists: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    z_bold: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")


class PairingWeight(Base):
    """A maintainer's weight for a model in pair draws (1 = normal, 0 = never drawn)."""

    __tablename__ = "arena_pairing_weights"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    weight: Mapped[float] = mapped_column(Float)
    note: Mapped[str | None] = mapped_column(Text)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class PairScore(Base):
    """Active pairing: how much a vote on this pair would shrink the ranking's uncertainty,
    computed from the Bradley-Terry fit at each refresh. Every version is kept: a battle's draw record
    names the version it drew with (battles.pairing["scores_version"])."""

    __tablename__ = "arena_pair_scores"

    version: Mapped[int] = mapped_column(Integer, primary_key=True)  # the refresh that wrote it
    model_lo_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    model_hi_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    score: Mapped[float] = mapped_column(Float)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ModelHealth(Base):
    """Arena answers that failed in a row; at the limit the model is paused from pairing."""

    __tablename__ = "arena_model_health"

    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    failures_in_row: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    last_failure_at: Mapped[datetime | None]
    paused_at: Mapped[datetime | None]
