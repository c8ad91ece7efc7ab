"""Battles, their two answers, the votes on them and the pair-outcome counts the ranking reads."""

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, Enum, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


class BattleStatus(enum.StrEnum):
    generating = "generating"  # answers are being produced
    ready = "ready"  # both answers stored, waiting for a vote
    voted = "voted"
    failed = "failed"  # a side failed to answer; never votable


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


class BattleAnswer(Base):
    __tablename__ = "battle_answers"

    battle_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("battles.id", ondelete="CASCADE"), primary_key=True)
    side: Mapped[str] = mapped_column(String(1), primary_key=True)
    status: Mapped[AnswerStatus] = mapped_column(_enum(AnswerStatus, "answer_status"))
    text: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    completion_tokens: Mapped[int | None]
    latency_s: Mapped[float | None]
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
    # Why the vote stays out of the ratings (e.g. "identity_leak"); None for a counted vote.
    excluded_reason: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PairCount(Base):
    """Outcome counts per unordered pair (low id first) and vote dimension.

    Updated in the vote's own transaction, so the ranking reads a table whose size grows with
    the number of models squared, never with the number of votes.
    """

    __tablename__ = "pair_counts"

    dimension: Mapped[str] = mapped_column(String(16), primary_key=True)
    model_lo_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    model_hi_id: Mapped[int] = mapped_column(ForeignKey("models.id"), primary_key=True)
    lo_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    hi_wins: Mapped[int] = mapped_column(default=0, server_default="0")
    ties: Mapped[int] = mapped_column(default=0, server_default="0")
    both_bad: Mapped[int] = mapped_column(default=0, server_default="0")
