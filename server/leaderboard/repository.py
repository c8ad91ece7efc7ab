"""All SQL of the leaderboard: what the snapshot reads, and the snapshots themselves."""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from arena.models import Battle, BattleAnswer, Vote
from server.leaderboard.models import LeaderboardSnapshot


async def latest(session: AsyncSession) -> LeaderboardSnapshot | None:
    query = select(LeaderboardSnapshot).order_by(LeaderboardSnapshot.id.desc()).limit(1)
    return await session.scalar(query)


async def add(session: AsyncSession, **fields: Any) -> LeaderboardSnapshot:
    snapshot = LeaderboardSnapshot(**fields)
    session.add(snapshot)
    await session.flush()
    return snapshot


async def helpfulness_votes_with_style(session: AsyncSession) -> Sequence[Row]:
    """One row per helpfulness vote: both models, the verdict and both answers' style features.

    Ten small numbers per vote; the texts are never read. The fit itself works on binned counts.
    """
    side_a, side_b = aliased(BattleAnswer), aliased(BattleAnswer)
    style = ("style_length", "style_headers", "style_lists", "style_bold")
    query = (
        select(Battle.model_a_id, Battle.model_b_id, Vote.helpfulness,
               *(getattr(side_a, f) for f in style), *(getattr(side_b, f) for f in style))
        .join(Vote, Vote.battle_id == Battle.id)
        .where(Vote.excluded_reason.is_(None))  # as in the pair counts: excluded votes never rate
        .join(side_a, (side_a.battle_id == Battle.id) & (side_a.side == "a"))
        .join(side_b, (side_b.battle_id == Battle.id) & (side_b.side == "b"))
    )
    return (await session.execute(query)).all()
