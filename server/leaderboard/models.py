from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


class LeaderboardSnapshot(Base):
    """One published leaderboard; its id is its version. Never updated, only superseded."""

    __tablename__ = "leaderboard_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    trigger: Mapped[str] = mapped_column(String(32))  # periodic, manual, evaluation
    config: Mapped[dict[str, Any]] = mapped_column(JSONB)  # how it was computed (ranking.SnapshotConfig)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    etag: Mapped[str] = mapped_column(String(64))
