"""The vote path: one short transaction that checks the battle, stores the vote and updates the counts."""

import logging
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import repository as repo
from arena import style
from arena.integrity import VoterIdentity
from arena.models import Battle, BattleStatus, Vote
from arena.schemas import BattleOut, VoteIn
from arena.service import view
from core.db import transaction, utcnow
from core.errors import conflict

log = logging.getLogger(__name__)


async def record_vote(
    sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID, vote: VoteIn, voter: VoterIdentity | None = None,
) -> BattleOut:
    try:
        async with transaction(sessions) as session:
            battle = await repo.get_battle(session, battle_id, lock=True)
            _check_votable(battle)
            # Kept and counted, but out of the ratings: an answer that named its model made it not blind.
            excluded = "identity_leak" if battle.identity_leak else None
            hashes = {"session_hash": voter.session_hash, "address_hash": voter.address_hash,
                      "network_hash": voter.network_hash} if voter else {}
            session.add(Vote(battle_id=battle.id, excluded_reason=excluded, **hashes,
                             **vote.model_dump(include={"helpfulness", "safety", "harm_category", "reason",
                                                        "reason_public"})))
            if excluded is None:
                await _bump_pair_counts(session, battle, vote)
            battle.status, battle.finished_at = BattleStatus.voted, utcnow()
            await session.flush()
            log.info("arena.vote.recorded", extra={"battle": str(battle.id), "excluded": excluded})
            return await view(session, battle)
    except IntegrityError:  # a concurrent vote won the unique constraint on battle_id
        raise conflict("this battle already has a vote") from None


async def _bump_pair_counts(session: AsyncSession, battle: Battle, vote: VoteIn) -> None:
    await repo.bump_pair_count(session, "helpfulness", battle.model_a_id, battle.model_b_id, vote.helpfulness)
    await style.bump_style_cell(session, battle, vote.helpfulness)
    if vote.safety is not None:
        await repo.bump_pair_count(session, "safety", battle.model_a_id, battle.model_b_id, vote.safety)


def _check_votable(battle: Battle) -> None:
    if battle.status == BattleStatus.voted:
        raise conflict("this battle already has a vote")
    if battle.status != BattleStatus.ready:
        raise conflict(f"this battle is {battle.status.value} and cannot be voted on")


