"""All SQL of pairing and model health: maintainer weights, pair scores, failure runs and pauses."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import case, delete, func, insert, literal, or_, select, union_all, update
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


async def counted_votes(session: AsyncSession) -> dict[int, int]:
    """Counted helpfulness votes per model (the pair counts hold only counted votes), in one query."""
    games = (PairCount.lo_wins + PairCount.hi_wins + PairCount.ties + PairCount.both_bad).label("games")
    helpful = PairCount.dimension == "helpfulness"
    sides = union_all(select(PairCount.model_lo_id.label("model_id"), games).where(helpful),
                      select(PairCount.model_hi_id.label("model_id"), games).where(helpful)).subquery()
    rows = await session.execute(select(sides.c.model_id, func.sum(sides.c.games)).group_by(sides.c.model_id))
    return {int(model_id): int(total) for model_id, total in rows}


async def drawable(session: AsyncSession) -> list[tuple[Contestant, float, int]]:
    """Active models that are not paused, with their weight (1 when none is stored) and counted
    helpfulness votes, in id order: one round trip on the battle-creation path."""
    games = PairCount.lo_wins + PairCount.hi_wins + PairCount.ties + PairCount.both_bad
    votes = (select(func.coalesce(func.sum(games), 0))
             .where(PairCount.dimension == "helpfulness",
                    or_(PairCount.model_lo_id == Contestant.id, PairCount.model_hi_id == Contestant.id))
             .correlate(Contestant).scalar_subquery())
    rows = await session.execute(
        select(Contestant, func.coalesce(PairingWeight.weight, 1.0), votes)
        .outerjoin(PairingWeight, PairingWeight.model_id == Contestant.id)
        .outerjoin(ModelHealth, ModelHealth.model_id == Contestant.id)
        .where(Contestant.status == ContestantStatus.active, ModelHealth.paused_at.is_(None))
        .order_by(Contestant.id))
    return [(model, float(weight), int(count)) for model, weight, count in rows]


async def scores(session: AsyncSession) -> tuple[int | None, dict[tuple[int, int], float]]:
    """The latest refresh's version and its scores by (low id, high id)."""
    rows = (await session.scalars(select(PairScore))).all()
    version = max((r.version for r in rows), default=None)
    return version, {(r.model_lo_id, r.model_hi_id): r.score for r in rows if r.version == version}


async def replace_scores(session: AsyncSession, rows: Sequence[tuple[int, int, float]]) -> int:
    """Writes a refresh's scores under the next version, in place of the previous ones."""
    version = int(await session.scalar(select(func.coalesce(func.max(PairScore.version), 0)))) + 1
    await session.execute(delete(PairScore))
    if rows:
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


async def reset_failures(session: AsyncSession, model_id: int) -> None:
    """A success ends the failure run; writes nothing for a model that has none (the common case)."""
    await session.execute(update(ModelHealth).where(ModelHealth.model_id == model_id, ModelHealth.failures_in_row > 0)
                          .values(failures_in_row=0))


async def add_failure(session: AsyncSession, model_id: int, error: str | None, limit: int,
                      now: datetime) -> tuple[int, datetime | None]:
    """One more failure in a row, pausing the model at `limit`, in one statement; (run, paused_at)."""
    run = ModelHealth.failures_in_row + 1
    statement = pg_insert(ModelHealth).values(model_id=model_id, failures_in_row=1, last_error=error,
                                              last_failure_at=now, paused_at=now if limit <= 1 else None)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(index_elements=[ModelHealth.model_id], set_={
        "failures_in_row": run, "last_error": excluded.last_error, "last_failure_at": excluded.last_failure_at,
        "paused_at": func.coalesce(ModelHealth.paused_at, case((run >= limit, literal(now)), else_=None)),
    })
    found = (await session.execute(statement.returning(ModelHealth.failures_in_row, ModelHealth.paused_at))).one()
    return int(found[0]), found[1]


async def resume(session: AsyncSession, model_id: int) -> bool:
    """Lifts a pause and starts a fresh failure run; False when the model was not paused."""
    found = await session.execute(update(ModelHealth).where(ModelHealth.model_id == model_id,
                                                            ModelHealth.paused_at.is_not(None))
                                  .values(paused_at=None, failures_in_row=0).returning(ModelHealth.model_id))
    return found.first() is not None
