"""A model's row across leaderboard snapshots, for the model page's history plot.

Every snapshot is kept (`leaderboard_snapshots`, one row per version); the model's row is read out
of each payload by Postgres (jsonb path), so no payload is parsed in Python. Bounded twice: at most
`WINDOW` newest snapshots are looked at, and at most `limit` points come back, newest first in SQL and
oldest first in the answer (the order a line plot reads).
"""

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

WINDOW = 1000
MAX_POINTS = 200

_HISTORY = text("""
SELECT s.id AS version, s.created_at, s.trigger,
       m -> 'overall' AS overall, m -> 'capability' AS capability, m -> 'safety' AS safety, m -> 'rank' AS rank,
       m -> 'arena' -> 'helpfulness' AS helpfulness, m -> 'arena' -> 'safety' AS arena_safety,
       m ->> 'coverage' AS coverage, coalesce((m ->> 'provisional')::boolean, false) AS provisional,
       m -> 'evaluation' ->> 'scope' AS scope
  FROM (SELECT id, created_at, trigger, payload FROM leaderboard_snapshots ORDER BY id DESC LIMIT :window) s
  CROSS JOIN LATERAL jsonb_path_query_first(s.payload, '$.models[*] ? (@.slug == $slug)',
                                            jsonb_build_object('slug', CAST(:slug AS text))) AS m
 WHERE m IS NOT NULL
 ORDER BY s.id DESC
 LIMIT :limit
""")


class BandPoint(BaseModel):
    value: float | None = None
    lower: float | None = None
    upper: float | None = None


class RatingPoint(BaseModel):
    rating: float | None = None
    lower: float | None = None
    upper: float | None = None


class HistoryPointOut(BaseModel):
    version: int = Field(description="The snapshot's version.")
    created_at: datetime
    trigger: str
    overall: BandPoint
    capability: BandPoint
    safety: BandPoint
    rank_best: int | None
    rank_worst: int | None
    coverage: str | None
    provisional: bool
    scope: str | None = Field(description="`full` or `preview`: the evaluation behind the scores.")
    arena_helpfulness: RatingPoint | None
    arena_safety: RatingPoint | None


class ModelHistoryOut(BaseModel):
    model: str
    points: list[HistoryPointOut] = Field(description="Oldest first; only snapshots that list the model.")


async def model_history(session: AsyncSession, slug: str, limit: int) -> ModelHistoryOut:
    rows = (await session.execute(_HISTORY, {"slug": slug, "window": WINDOW, "limit": min(limit, MAX_POINTS)})).all()
    return ModelHistoryOut(model=slug, points=[_point(row) for row in reversed(rows)])


def _band(value: Any) -> BandPoint:
    return BandPoint(**{k: value.get(k) for k in ("value", "lower", "upper")}) if isinstance(value, dict) else BandPoint()


def _rating(value: Any) -> RatingPoint | None:
    return RatingPoint(**{k: value.get(k) for k in ("rating", "lower", "upper")}) if isinstance(value, dict) else None


def _point(row: Any) -> HistoryPointOut:
    rank = row.rank if isinstance(row.rank, dict) else {}
    return HistoryPointOut(
        version=row.version, created_at=row.created_at, trigger=row.trigger, overall=_band(row.overall),
        capability=_band(row.capability), safety=_band(row.safety), rank_best=rank.get("best"),
        rank_worst=rank.get("worst"), coverage=row.coverage, provisional=row.provisional, scope=row.scope,
        arena_helpfulness=_rating(row.helpfulness), arena_safety=_rating(row.arena_safety),
    )
