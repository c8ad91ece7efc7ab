"""API keys: only a hash is stored; the key itself is shown once, when it is created."""

import enum
from datetime import datetime

from sqlalchemy import Enum, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db import Base, utcnow


class KeyScope(enum.StrEnum):
    submitter = "submitter"
    admin = "admin"


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # The public part of the key, so a lookup needs no scan; the secret part is only hashed.
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[KeyScope] = mapped_column(Enum(KeyScope, name="key_scope", native_enum=False, length=16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class RateCounter(Base):
    """A fixed-window counter (rate limits of anonymous clients, quotas of keys), one row per bucket.

    Counted in Postgres, not in process memory, so a limit holds across several API processes; here
    beside the keys because quotas are per key and Alembic reads this module's tables.
    """

    __tablename__ = "rate_counters"

    # The action, the kind of client id and its salted hash, e.g. "battles:addr:<64 hex digits>".
    bucket: Mapped[str] = mapped_column(String(160), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(index=True)
    count: Mapped[int]
