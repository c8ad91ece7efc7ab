"""Evaluation runs and their per-item rows.

Generations and scores are keyed by fingerprints (see ``evaluation.runs.fingerprints``), not by run:
a resumed run, a re-evaluation with nothing changed and a re-score with a new judge all find the
rows already there. Primary keys make "one row per item" a database guarantee, and every write is
an upsert. A run lists its items in ``eval_run_items``, so what belongs to a run is a join.
"""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Enum,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow
from evaluation.types import Status


class RunStatus(enum.StrEnum):
    queued = "queued"  # waiting for a worker
    running = "running"
    finished = "finished"
    failed = "failed"  # ``error`` says why


class RunReason(enum.StrEnum):
    submission = "submission"
    admin = "admin"
    periodic = "periodic"
    cli = "cli"
    superseded = "superseded"  # continues a run whose fingerprint changed while it was pending
    first_run = "first_run"  # queued by the first start of `libra serve` for the default contestants


class RunScope(enum.StrEnum):
    """A preview samples fewer items than the configured cycle (``libra eval --limit``, the first
    start's quick runs); the leaderboard reads one only for a model that has no full run."""

    full = "full"
    preview = "preview"


def _status_column() -> Enum:
    # Values ("ok"), not member names ("OK"), are what the API and the ranking job read.
    return Enum(Status, name="eval_item_status", native_enum=False, length=16,
                values_callable=lambda kind: [member.value for member in kind])


class EvalRun(Base):
    __tablename__ = "eval_runs"
    __table_args__ = (Index("ix_eval_runs_model_suite", "model_id", "suite", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"))
    suite: Mapped[str] = mapped_column(String(64))
    status: Mapped[RunStatus] = mapped_column(
        Enum(RunStatus, name="eval_run_status", native_enum=False, length=16), index=True
    )
    reason: Mapped[RunReason] = mapped_column(
        Enum(RunReason, name="eval_run_reason", native_enum=False, length=16)
    )
    requested_by: Mapped[str] = mapped_column(String(120))
    scope: Mapped[RunScope] = mapped_column(
        Enum(RunScope, name="eval_run_scope", native_enum=False, length=16), default=RunScope.full,
        server_default=RunScope.full.value,
    )
    # What was asked for, fixed at request time so a retried job plans the same run.
    cycle_id: Mapped[str] = mapped_column(String(32))
    items_per_task: Mapped[int]
    held_out_per_task: Mapped[int]
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    # What was planned: set when a worker starts the run.
    run_fingerprint: Mapped[str | None] = mapped_column(String(32), index=True)
    model_fingerprint: Mapped[str | None] = mapped_column(String(32))
    suite_version: Mapped[str | None] = mapped_column(String(32))
    sample_seed: Mapped[int | None] = mapped_column(BigInteger)  # derived from cycle_id, recorded
    sample_fingerprint: Mapped[str | None] = mapped_column(String(32))
    judge_version: Mapped[str | None] = mapped_column(Text)
    parameters: Mapped[dict[str, Any] | None] = mapped_column(JSONB)  # sampling, seed, batch size
    items_total: Mapped[int] = mapped_column(default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    superseded_by: Mapped[int | None] = mapped_column(ForeignKey("eval_runs.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]  # bumped with every saved batch
    finished_at: Mapped[datetime | None]


class EvalRunItem(Base):
    """One row per planned item of a run: which generation and score rows it reads."""

    __tablename__ = "eval_run_items"

    run_id: Mapped[int] = mapped_column(ForeignKey("eval_runs.id", ondelete="CASCADE"), primary_key=True)
    task: Mapped[str] = mapped_column(String(128), primary_key=True)
    item_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    generation_fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    score_fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    axis: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(32))
    held_out: Mapped[bool]
    labels: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)


class EvalGeneration(Base):
    """A model's answer to one rendered item, shared by every run and scorer with the same inputs."""

    __tablename__ = "eval_generations"

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    task: Mapped[str] = mapped_column(String(128))
    task_version: Mapped[str] = mapped_column(String(32))
    item_id: Mapped[str] = mapped_column(String(128))
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSONB)
    status: Mapped[Status] = mapped_column(_status_column())
    text: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(16))
    prompt_tokens: Mapped[int | None]
    completion_tokens: Mapped[int | None]
    latency_s: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class EvalScore(Base):
    """A scorer's verdict on one generation; the scorer version includes rules and judge versions."""

    __tablename__ = "eval_scores"
    __table_args__ = (
        # A status is never a score: only "ok" rows carry one, and it lies in [0, 1].
        CheckConstraint(
            "score IS NULL OR (status = 'ok' AND score >= 0 AND score <= 1)", name="score_only_when_ok"
        ),
    )

    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    generation_fingerprint: Mapped[str] = mapped_column(
        ForeignKey("eval_generations.fingerprint", ondelete="CASCADE"), index=True
    )
    task: Mapped[str] = mapped_column(String(128))
    item_id: Mapped[str] = mapped_column(String(128))
    scorer_version: Mapped[str] = mapped_column(Text)
    status: Mapped[Status] = mapped_column(_status_column())
    score: Mapped[float | None] = mapped_column(Float)
    extracted: Mapped[str | None] = mapped_column(Text)
    scored_by: Mapped[str] = mapped_column(String(32), default="")
    outcome: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class JudgeAgreement(Base):
    """A judge version's measured agreement with the gold set, computed when the judge is configured.

    One row per (judge version, gold set version): a new rubric, a new judge model or a changed gold
    file is measured again. ``results`` holds every figure (judge alone and rules + judge, per split,
    per measure, per failure kind); the held-out binary figures of the judge alone are also columns.
    """

    __tablename__ = "eval_judge_agreements"
    __table_args__ = (UniqueConstraint("judge_version", "gold_version", name="uq_judge_agreement_version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    judge_version: Mapped[str] = mapped_column(Text)
    gold_version: Mapped[str] = mapped_column(String(32))
    rubric_version: Mapped[str] = mapped_column(String(32))
    n_items: Mapped[int]
    n_abstained: Mapped[int]
    heldout_accuracy: Mapped[float | None] = mapped_column(Float)
    heldout_kappa: Mapped[float | None] = mapped_column(Float)
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    duration_s: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
