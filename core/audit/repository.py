from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import AuditEvent


def record(session: AsyncSession, actor: str, action: str, target: str, **details: Any) -> None:
    """Adds an audit row to the caller's transaction, so it commits or rolls back with the change."""
    session.add(AuditEvent(actor=actor, action=action, target=target, details=details))


async def latest(session: AsyncSession, limit: int = 100) -> list[AuditEvent]:
    rows = await session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit))
    return list(rows)
