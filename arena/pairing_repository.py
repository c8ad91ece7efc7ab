"""All SQL of pairing and model health: maintainer weights, pair scores and pauses (a failure run is counted
with the answers, in arena.turn_store)."""

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection
from sqlalchemy import insert, select, text, update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from arena.models import ModelHealth, PairCount, PairingWeight, PairScore
from core.db import utcnow
from core.registry.models import Contestant, ContestantStatus


async def weights(session: AsyncSession) -> dict[int, PairingWeight]:
    return {w.model_id: w for w in await session.scalars(select(PairingWeight))}


async def set_weight(session: AsyncSession, model_id: int, weight: float, note: str | None,
                     updated_by: str) -> PairingWeight:
    values = {"weight": weight, "note": note, "updated_by": updated_by, "updated_at": utcnow()}
    statement = pg_insert(PairingWeight).values(model_id=model_id, **values)
    statement = statement.on_conflict_do_update(index_elements=[PairingWeight.model_id], set_=values)
    await session.execute(statement.returning(PairingWeight.model_id))
    row = await session.get(PairingWeight, model_id, populate_existing=True)
    assert row is not None  # just written in this transaction
    return row


# Counted helpfulness votes per model (the pair counts hold only counted votes; each pair counts for both
# of its models), in one pass over the helpfulness rows: (model_id, votes).
_VOTES_PER_MODEL_SQL = f"""
SELECT model_id, sum(games) AS votes FROM (
  SELECT p.model_lo_id AS model_id, p.lo_wins + p.hi_wins + p.ties + p.both_bad AS games
    FROM {PairCount.__tablename__} p WHERE p.dimension = 'helpfulness'
  UNION ALL
  SELECT p.model_hi_id, p.lo_wins + p.hi_wins + p.ties + p.both_bad
    FROM {PairCount.__tablename__} p WHERE p.dimension = 'helpfulness'
) sides GROUP BY model_id
"""


async def counted_votes(session: AsyncSession) -> dict[int, int]:
    """Counted helpfulness votes per model, in one query."""
    rows = await session.execute(text(_VOTES_PER_MODEL_SQL))
    return {int(model_id): int(total) for model_id, total in rows}


_MODEL_COLUMNS = tuple(column.name for column in Contestant.__table__.columns)
# JSON columns come as text, parsed only for the two models a draw picks (at 100 models, parsing every
# drawable model's config was most of what was left of a draw's CPU).
_JSON_COLUMNS = frozenset(c.name for c in Contestant.__table__.columns if isinstance(c.type, JSONB))

# Active models that are not paused, with their weight (1 when none is stored) and counted helpfulness
# votes, in id order. SQL text without parameters, so that the battle path runs it on the driver's own
# connection (arena.pairing.draw_on) and other callers through their session, and both build the same rows.
#
# The votes per model come from one pass over the helpfulness rows, joined: a count per model, each
# reading every helpfulness row for its two columns, cost n^3 / 2 row reads a battle, 76 ms at 100 models.
_MODEL_SELECTED = ", ".join(f"m.{name}::text" if name in _JSON_COLUMNS else f"m.{name}" for name in _MODEL_COLUMNS)
DRAWABLE_SQL = f"""
WITH votes AS ({_VOTES_PER_MODEL_SQL})
SELECT {_MODEL_SELECTED}, coalesce(w.weight, 1.0) AS weight, coalesce(v.votes, 0) AS votes
  FROM {Contestant.__tablename__} m
  LEFT JOIN {PairingWeight.__tablename__} w ON w.model_id = m.id
  LEFT JOIN {ModelHealth.__tablename__} h ON h.model_id = m.id
  LEFT JOIN votes v ON v.model_id = m.id
 WHERE m.status = '{ContestantStatus.active.value}' AND h.paused_at IS NULL
 ORDER BY m.id
"""
# The latest refresh: its version and when it was written. A refresh writes its rows in one transaction
# and never changes them, so this pair names one set of scores for good (a version number alone could
# be reused by another database, such as a restored or recreated one, under a process that cached it).
LATEST_SQL = f"SELECT version, computed_at FROM {PairScore.__tablename__} ORDER BY version DESC LIMIT 1"
_SCORES_OF = f"SELECT model_lo_id, model_hi_id, score FROM {PairScore.__tablename__} WHERE version = {{}}"
_SCORES_ON_SQL = _SCORES_OF.format("%(version)s")  # on the driver's connection

Known = dict[tuple[int, int], float]  # a refresh's scores by (low id, high id)


class Latest(NamedTuple):
    version: int
    computed_at: datetime


class DrawableModel(NamedTuple):
    """A drawable model's id, weight and counted votes, and its row, made a model only if it is drawn."""

    id: int
    weight: float
    votes: int
    values: tuple[Any, ...]  # the models row, in _MODEL_COLUMNS order

    def model(self) -> Contestant:
        """A transient model (in no session)."""
        values = dict(zip(_MODEL_COLUMNS, self.values, strict=True))
        values["status"] = ContestantStatus(values["status"])
        for name in _JSON_COLUMNS:
            values[name] = json.loads(values[name]) if values[name] is not None else None
        return Contestant(**values)


Drawable = list[DrawableModel]
_ID_AT = _MODEL_COLUMNS.index("id")


def drawable_rows(rows: Sequence[Sequence[Any]]) -> Drawable:
    """DRAWABLE_SQL's rows."""
    n = len(_MODEL_COLUMNS)
    return [DrawableModel(int(row[_ID_AT]), float(row[n]), int(row[n + 1]), tuple(row[:n])) for row in rows]


def latest_row(row: Sequence[Any] | None) -> Latest | None:
    return Latest(int(row[0]), row[1]) if row else None


def known_rows(rows: Sequence[Sequence[Any]]) -> Known:
    return {(int(lo), int(hi)): float(score) for lo, hi, score in rows}


async def drawable(session: AsyncSession) -> Drawable:
    return drawable_rows((await session.execute(text(DRAWABLE_SQL))).all())


async def latest(session: AsyncSession) -> Latest | None:
    return latest_row((await session.execute(text(LATEST_SQL))).first())


async def scores_of(session: AsyncSession, version: int) -> Known:
    """The scores a refresh wrote under `version`; what a stored draw replays with."""
    return known_rows((await session.execute(text(_SCORES_OF.format(":version")), {"version": version})).all())


async def scores_on(conn: AsyncConnection, version: int) -> Known:
    """`scores_of` on the driver's own connection (the battle path)."""
    return known_rows(await (await conn.execute(_SCORES_ON_SQL, {"version": version})).fetchall())


async def scores(session: AsyncSession) -> tuple[int | None, Known]:
    """The latest refresh's version and its scores."""
    found = await latest(session)
    return (found.version, await scores_of(session, found.version)) if found else (None, {})


async def add_scores(session: AsyncSession, rows: Sequence[tuple[int, int, float]]) -> int:
    """Writes a refresh's scores under the next version and keeps the earlier versions, which the battles
    drawn with them name. Scores equal to the latest version's write nothing and return that version, so a
    quiet arena adds no rows; so do no scores at all (no pair of active models has counted votes), which a
    version without rows cannot say: the latest version stays in use (0 before the first). Refreshes take turns (the
    table lock, which readers do not wait for), so each gets its own version."""
    await session.execute(text(f"LOCK TABLE {PairScore.__tablename__} IN SHARE ROW EXCLUSIVE MODE"))
    latest, known = await scores(session)
    if not rows or known == {(lo, hi): score for lo, hi, score in rows}:
        return latest or 0
    version = (latest or 0) + 1
    now = utcnow()
    await session.execute(insert(PairScore), [
        {"model_lo_id": lo, "model_hi_id": hi, "score": score, "version": version, "computed_at": now}
        for lo, hi, score in rows])
    return version


async def paused_ids(session: AsyncSession) -> set[int]:
    return set(await session.scalars(select(ModelHealth.model_id).where(ModelHealth.paused_at.is_not(None))))


async def paused(session: AsyncSession) -> Sequence[tuple[ModelHealth, Contestant]]:
    rows = await session.execute(select(ModelHealth, Contestant).join(Contestant, Contestant.id == ModelHealth.model_id)
                                 .where(ModelHealth.paused_at.is_not(None)).order_by(ModelHealth.paused_at))
    return [(health, model) for health, model in rows]


async def resume(session: AsyncSession, model_id: int) -> bool:
    """Lifts a pause and starts a fresh failure run; False when the model was not paused."""
    found = await session.execute(update(ModelHealth).where(ModelHealth.model_id == model_id,
                                                            ModelHealth.paused_at.is_not(None))
                                  .values(paused_at=None, failures_in_row=0).returning(ModelHealth.model_id))
    return found.first() is not None
