"""All SQL of the leaderboard: what the snapshot reads, and the snapshots themselves."""

from collections.abc import Sequence
from typing import Any

import numpy as np
from sqlalchemy import ColumnElement, Row, and_, exists, func, or_, select
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from arena.models import Battle, BattleAnswer, StyleCell, Vote, VoteReview
from server.leaderboard.models import LeaderboardSnapshot

STYLE_COLUMNS = ("style_length", "style_headers", "style_lists", "style_bold")


async def latest(session: AsyncSession) -> LeaderboardSnapshot | None:
    query = select(LeaderboardSnapshot).order_by(LeaderboardSnapshot.id.desc()).limit(1)
    return await session.scalar(query)


async def get(session: AsyncSession, version: int) -> LeaderboardSnapshot | None:
    return await session.get(LeaderboardSnapshot, version)


async def add(session: AsyncSession, **fields: Any) -> LeaderboardSnapshot:
    snapshot = LeaderboardSnapshot(**fields)
    session.add(snapshot)
    await session.flush()
    return snapshot


def counted_vote() -> ColumnElement[bool]:
    """A vote that rates: never excluded, or held for review and then approved."""
    approved = exists().where(VoteReview.vote_id == Vote.id, VoteReview.decision == "approved")
    return or_(Vote.excluded_reason.is_(None), and_(Vote.excluded_reason == "review", approved))


CELL_COLUMNS = ("model_lo_id", "model_hi_id", "bin", "lo_wins", "hi_wins", "ties", "both_bad",
                "z_length", "z_headers", "z_lists", "z_bold")


async def style_cells(session: AsyncSession) -> dict[str, np.ndarray]:
    """The binned style counts, one array per column: at most pairs x joint bins cells, whatever the
    number of votes.

    Each column comes as one text of comma-separated values that numpy parses directly: no Python
    object per cell, so reading them costs a few bytes per cell (benchmarks/arena_snapshot.py). Postgres
    prints float8 with the shortest text that reads back exactly, so the sums arrive bit for bit.
    """
    key = (StyleCell.model_lo_id, StyleCell.model_hi_id, StyleCell.bin)
    texts = [func.array_to_string(func.array_agg(aggregate_order_by(getattr(StyleCell, c), *key)), ",")
             for c in CELL_COLUMNS]
    row = (await session.execute(select(*texts))).one()
    return {c: np.fromstring(text or "", dtype=np.float64 if c.startswith("z_") else np.int64, sep=",")
            for c, text in zip(CELL_COLUMNS, row, strict=True)}


async def helpfulness_votes_with_style(session: AsyncSession) -> Sequence[Row]:
    """One row per counted helpfulness vote: both models, the verdict and each side's style features
    summed over its turns (as `arena.style.bump_style_cell` counts them).

    The row-based read the snapshot used before style cells: kept as the reference that the cells are
    checked against (tests, benchmarks/arena_snapshot.py), never read by the snapshot job.
    """
    per_side = [func.sum(getattr(BattleAnswer, c)).filter(BattleAnswer.side == side).label(f"{side}_{c}")
                for side in ("a", "b") for c in STYLE_COLUMNS]
    sides = select(BattleAnswer.battle_id, *per_side).group_by(BattleAnswer.battle_id).subquery()
    query = (
        select(Battle.model_a_id, Battle.model_b_id, Vote.helpfulness,
               *(func.coalesce(sides.c[f"{side}_{c}"], 0) for side in ("a", "b") for c in STYLE_COLUMNS))
        .join(Vote, Vote.battle_id == Battle.id)
        .join(sides, sides.c.battle_id == Battle.id)
        .where(counted_vote())
        .order_by(Vote.id)
    )
    return (await session.execute(query)).all()


async def replay_record(session: AsyncSession) -> dict[str, Any]:
    """What a replay needs to pick the votes this snapshot read: the highest vote id and the votes
    approved in review by then (read in the snapshot's own repeatable-read transaction)."""
    max_id = await session.scalar(select(func.max(Vote.id)))
    approved = (await session.scalars(
        select(VoteReview.vote_id).where(VoteReview.decision == "approved").order_by(VoteReview.vote_id)
    )).all()
    return {"max_vote_id": max_id or 0, "approved_votes": list(approved)}
