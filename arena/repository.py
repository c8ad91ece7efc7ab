"""All SQL of the arena."""

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from psycopg import AsyncConnection
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from arena.generator import this_process
from arena.models import Battle, BattleAnswer, BattleStatus, BattleTurn, PairCount, Verdict, Vote
from core.db import utcnow
from core.errors import not_found


async def get_battle(session: AsyncSession, battle_id: uuid.UUID, *, lock: bool = False) -> Battle:
    query = select(Battle).where(Battle.id == battle_id)
    battle = await session.scalar(query.with_for_update() if lock else query)
    if battle is None:
        raise not_found("battle", battle_id)
    return battle


# A new battle and its first turn in one statement (the turn's foreign key is checked at the statement's
# end), on the driver's own connection in autocommit: on the battle-creation path the ORM's unit of work
# cost more CPU than the database did.
_INSERT_BATTLE = """
WITH b AS (
  INSERT INTO battles (id, prompt, status, model_a_id, model_b_id, sampling_seed, created_at, identity_leak,
                       prompt_source, attack, attack_seed, pool_item, turns, creator_hash, address_hash, pairing,
                       generator)
  VALUES (%(id)s, %(prompt)s, %(status)s, %(model_a_id)s, %(model_b_id)s, %(sampling_seed)s, %(created_at)s, false,
          %(prompt_source)s, %(attack)s, %(attack_seed)s, %(pool_item)s, 1, %(creator_hash)s, %(address_hash)s,
          CAST(%(pairing)s AS jsonb), %(generator)s)
  RETURNING id
)
INSERT INTO battle_turns (battle_id, turn, prompt, created_at, regenerations)
SELECT id, 1, %(prompt)s, %(created_at)s, 0 FROM b
"""


async def insert_battle(conn: AsyncConnection, battle: Battle) -> None:
    """Writes a new (transient) battle with its first turn, whose prompt is the battle's: one statement,
    committed by itself (the connection is in autocommit)."""
    await conn.execute(_INSERT_BATTLE, {
        "id": battle.id, "prompt": battle.prompt, "status": battle.status.value, "model_a_id": battle.model_a_id,
        "model_b_id": battle.model_b_id, "sampling_seed": battle.sampling_seed, "created_at": battle.created_at,
        "prompt_source": battle.prompt_source.value, "attack": battle.attack, "attack_seed": battle.attack_seed,
        "pool_item": battle.pool_item, "creator_hash": battle.creator_hash, "address_hash": battle.address_hash,
        "pairing": json.dumps(battle.pairing) if battle.pairing is not None else None, "generator": this_process()})


async def answers_of(session: AsyncSession, battle_id: uuid.UUID, turn: int | None = None) -> Sequence[BattleAnswer]:
    """A battle's answers by turn, then side (one turn's only when ``turn`` is given)."""
    query = select(BattleAnswer).where(BattleAnswer.battle_id == battle_id)
    if turn is not None:
        query = query.where(BattleAnswer.turn == turn)
    return (await session.scalars(query.order_by(BattleAnswer.turn, BattleAnswer.side))).all()


async def turns_of(session: AsyncSession, battle_id: uuid.UUID) -> Sequence[BattleTurn]:
    query = select(BattleTurn).where(BattleTurn.battle_id == battle_id).order_by(BattleTurn.turn)
    return (await session.scalars(query)).all()


async def get_turn(session: AsyncSession, battle_id: uuid.UUID, turn: int) -> BattleTurn | None:
    return await session.get(BattleTurn, (battle_id, turn))


async def conversation(session: AsyncSession, battle_id: uuid.UUID
                       ) -> Sequence[tuple[BattleTurn, BattleAnswer | None]]:
    """Every turn with its answers (one row per answer, one with None for a turn still without any),
    in order, in one round trip."""
    query = (
        select(BattleTurn, BattleAnswer)
        .outerjoin(BattleAnswer, (BattleAnswer.battle_id == BattleTurn.battle_id) & (BattleAnswer.turn == BattleTurn.turn))
        .where(BattleTurn.battle_id == battle_id)
        .order_by(BattleTurn.turn, BattleAnswer.side)
    )
    return [(turn, answer) for turn, answer in (await session.execute(query)).all()]


async def delete_answers(session: AsyncSession, battle_id: uuid.UUID, turn: int) -> None:
    """Regeneration: the turn's answers make way for new ones (never after a vote)."""
    await session.execute(delete(BattleAnswer).where(BattleAnswer.battle_id == battle_id, BattleAnswer.turn == turn))


async def vote_of(session: AsyncSession, battle_id: uuid.UUID) -> Vote | None:
    return await session.scalar(select(Vote).where(Vote.battle_id == battle_id))


async def bump_pair_count(
    session: AsyncSession, dimension: str, model_a: int, model_b: int, verdict: Verdict
) -> None:
    lo, hi = sorted((model_a, model_b))
    winner_is_lo = (verdict == Verdict.a) == (model_a == lo)
    column = {Verdict.tie: "ties", Verdict.both_bad: "both_bad"}.get(
        verdict, "lo_wins" if winner_is_lo else "hi_wins"
    )
    row = {"dimension": dimension, "model_lo_id": lo, "model_hi_id": hi, column: 1}
    statement = insert(PairCount).values(row)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["dimension", "model_lo_id", "model_hi_id"],
            set_={column: getattr(PairCount, column) + 1},
        )
    )


async def excluded_votes(session: AsyncSession) -> dict[str, int]:
    """How many stored votes are kept out of the ratings, by reason (e.g. {"identity_leak": 3})."""
    query = (select(Vote.excluded_reason, func.count()).where(Vote.excluded_reason.is_not(None))
             .group_by(Vote.excluded_reason))
    return {reason: count for reason, count in (await session.execute(query)).all()}


async def pair_counts(session: AsyncSession, dimension: str) -> Sequence[PairCount]:
    return (await session.scalars(select(PairCount).where(PairCount.dimension == dimension))).all()


async def fail_battle(session: AsyncSession, battle_id: uuid.UUID) -> None:
    """A battle whose generation was interrupted ends failed (if it is still generating)."""
    await session.execute(
        update(Battle)
        .where(Battle.id == battle_id, Battle.status == BattleStatus.generating)
        .values(status=BattleStatus.failed, finished_at=utcnow())
    )


async def fail_stale_battles(session: AsyncSession, older_than: datetime) -> int:
    """Battles left 'generating' by a crash become 'failed', so none stays half-done."""
    result = await session.execute(
        update(Battle)
        .where(Battle.status == BattleStatus.generating, Battle.created_at < older_than)
        .values(status=BattleStatus.failed, finished_at=utcnow())
    )
    return result.rowcount or 0


async def expire_battles(session: AsyncSession, answered_before: datetime) -> int:
    """Ready battles nobody voted on within the vote window become 'expired' and unvotable."""
    result = await session.execute(
        update(Battle)
        .where(Battle.status == BattleStatus.ready, Battle.answered_at < answered_before)
        .values(status=BattleStatus.expired, finished_at=utcnow())
    )
    return result.rowcount or 0


async def generators_on_host(session: AsyncSession, host: str) -> list[str]:
    """The processes of this host that have battles generating (arena.orphans)."""
    query = (select(Battle.generator).distinct()
             .where(Battle.status == BattleStatus.generating, Battle.generator.startswith(f"{host}:", autoescape=True)))
    return list((await session.scalars(query)).all())


async def fail_battles_of(session: AsyncSession, generators: list[str]) -> int:
    """Fails the generating battles of these (dead) processes, as ``fail_battle`` fails one."""
    result = await session.execute(
        update(Battle)
        .where(Battle.status == BattleStatus.generating, Battle.generator.in_(generators))
        .values(status=BattleStatus.failed, finished_at=utcnow())
    )
    return result.rowcount or 0
