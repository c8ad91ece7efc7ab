"""All SQL about contestants."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import conflict, not_found
from core.registry.models import Contestant, ContestantStatus


async def list_all(session: AsyncSession, status: ContestantStatus | None = None) -> Sequence[Contestant]:
    query = select(Contestant).order_by(Contestant.id)
    if status is not None:
        query = query.where(Contestant.status == status)
    return (await session.scalars(query)).all()


async def list_submitted_by(session: AsyncSession, key_id: int) -> Sequence[Contestant]:
    query = select(Contestant).where(Contestant.submitted_by == key_id).order_by(Contestant.id)
    return (await session.scalars(query)).all()


async def get_by_slug(session: AsyncSession, slug: str) -> Contestant:
    found = await session.scalar(select(Contestant).where(Contestant.slug == slug))
    if found is None:
        raise not_found("model", slug)
    return found


async def get_many(session: AsyncSession, ids: Sequence[int]) -> dict[int, Contestant]:
    rows = await session.scalars(select(Contestant).where(Contestant.id.in_(ids)))
    return {row.id: row for row in rows}


async def add(session: AsyncSession, **fields: Any) -> Contestant:
    if await session.scalar(select(Contestant.id).where(Contestant.slug == fields["slug"])):
        raise conflict(f"a model named {fields['slug']!r} already exists")
    contestant = Contestant(**fields)
    session.add(contestant)
    await session.flush()
    return contestant


async def retire(session: AsyncSession, contestant: Contestant) -> None:
    if contestant.status == ContestantStatus.retired:
        raise conflict(f"model {contestant.slug!r} is already retired")
    contestant.status = ContestantStatus.retired
    contestant.retired_at = utcnow()
