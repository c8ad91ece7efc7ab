"""The contestants: every model the arena and the evaluation jobs can call."""

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import Enum, ForeignKey, String, Text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


class ContestantStatus(enum.StrEnum):
    pending = "pending"  # submitted, waiting for its first evaluation
    evaluating = "evaluating"  # its first evaluation runs now
    evaluated = "evaluated"  # evaluated, waiting for an admin's approval (docs/security.md)
    active = "active"  # may be drawn into battles and ranked
    retired = "retired"  # kept for history, never drawn again


class Contestant(Base):
    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(120))
    organisation: Mapped[str] = mapped_column(String(120))
    description: Mapped[str] = mapped_column(Text, default="")
    backend_kind: Mapped[str] = mapped_column(String(32))
    # Validated by inference.parse_backend_config before it is stored; never holds secrets, only
    # the names of the environment variable or file that hold them (admin-registered models).
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[ContestantStatus] = mapped_column(
        Enum(ContestantStatus, name="contestant_status", native_enum=False, length=16),
        default=ContestantStatus.pending,
    )
    # The endpoint's API key given as a value, Fernet-encrypted (core.secrets); never in `config`,
    # never in a response or a log line.
    api_key_encrypted: Mapped[str | None] = mapped_column(Text, default=None)
    submitted_by: Mapped[int | None] = mapped_column(ForeignKey("api_keys.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None]
