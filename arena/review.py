"""The review queue: votes the anomaly rules held (arena.integrity), for an admin to approve or reject.

Votes are append-only, so a decision is a row of its own (vote_reviews), and nothing is deleted. An
approved vote is counted then as a counted vote would have been at its time: its pair counts (overall
and for its prompt source) and its style cell. A rejected one stays stored and out of the ratings.
"""

import enum
import logging
import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from arena import style
from arena import vote_store as store
from arena.models import Battle, PromptSource, Verdict, Vote, VoteFlag, VoteReview
from arena.schemas import VoteIn
from core.errors import LibraError, conflict, not_found
from core.registry.models import Contestant

log = logging.getLogger(__name__)
HELD = "review"


class Decision(enum.StrEnum):
    approved = "approved"
    rejected = "rejected"


class QueueState(enum.StrEnum):
    pending = "pending"
    decided = "decided"
    all = "all"


class FlagOut(BaseModel):
    rule: str
    detail: dict[str, Any]
    created_at: datetime


class ReviewOut(BaseModel):
    decision: Decision
    reviewer: str
    note: str | None
    created_at: datetime


class HeldVote(BaseModel):
    """A held vote with its evidence and its battle, as an admin sees it (model names included)."""

    vote_id: int
    battle_id: uuid.UUID
    created_at: datetime
    helpfulness: Verdict
    safety: Verdict | None
    read_s: float | None
    prompt: str
    prompt_source: PromptSource
    model_a: str
    model_b: str
    flags: list[FlagOut]
    review: ReviewOut | None = None


class DecisionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Decision
    note: str | None = Field(default=None, max_length=500, description="Why, for the other admins.")


def _queue_query(state: QueueState, limit: int, before_id: int | None) -> Any:
    model_a, model_b = aliased(Contestant), aliased(Contestant)
    query = (select(Vote, Battle, model_a.slug, model_b.slug, VoteReview)
             .join(Battle, Battle.id == Vote.battle_id)
             .join(model_a, model_a.id == Battle.model_a_id).join(model_b, model_b.id == Battle.model_b_id)
             .outerjoin(VoteReview, VoteReview.vote_id == Vote.id)
             .where(Vote.excluded_reason == HELD).order_by(Vote.id.desc()).limit(limit))
    if state is QueueState.pending:
        query = query.where(VoteReview.vote_id.is_(None))
    elif state is QueueState.decided:
        query = query.where(VoteReview.vote_id.is_not(None))
    return query.where(Vote.id < before_id) if before_id is not None else query


async def queue(session: AsyncSession, state: QueueState, limit: int, before_id: int | None) -> list[HeldVote]:
    """Held votes, newest first (page with ``before_id``), each with its flags."""
    rows = (await session.execute(_queue_query(state, limit, before_id))).all()
    flags = await _flags_of(session, [vote.id for vote, *_ in rows])
    return [_held(vote, battle, a, b, review, flags.get(vote.id, [])) for vote, battle, a, b, review in rows]


async def _flags_of(session: AsyncSession, vote_ids: list[int]) -> dict[int, list[FlagOut]]:
    found: dict[int, list[FlagOut]] = {}
    if not vote_ids:
        return found
    query = select(VoteFlag).where(VoteFlag.vote_id.in_(vote_ids)).order_by(VoteFlag.id)
    for flag in await session.scalars(query):
        found.setdefault(flag.vote_id, []).append(FlagOut(rule=flag.rule, detail=flag.detail,
                                                          created_at=flag.created_at))
    return found


def _held(vote: Vote, battle: Battle, a: str, b: str, review: VoteReview | None, flags: list[FlagOut]) -> HeldVote:
    decided = None if review is None else ReviewOut(decision=Decision(review.decision), reviewer=review.reviewer,
                                                    note=review.note, created_at=review.created_at)
    return HeldVote(vote_id=vote.id, battle_id=battle.id, created_at=vote.created_at, helpfulness=vote.helpfulness,
                    safety=vote.safety, read_s=vote.read_s, prompt=battle.prompt, prompt_source=battle.prompt_source,
                    model_a=a, model_b=b, flags=flags, review=decided)


async def decide(session: AsyncSession, vote_id: int, decision: DecisionIn, reviewer: str) -> HeldVote:
    """Approve (the vote is counted now) or reject (it stays out); one decision per vote (409 after)."""
    vote = await session.get(Vote, vote_id)
    if vote is None:
        raise not_found("vote", vote_id)
    if vote.excluded_reason != HELD:
        raise LibraError(f"vote {vote_id} is not held for review", status=409, code="not_held")
    try:
        async with session.begin_nested():
            session.add(VoteReview(vote_id=vote_id, decision=decision.decision.value, reviewer=reviewer,
                                   note=decision.note))
    except IntegrityError:
        raise conflict(f"vote {vote_id} has already been reviewed") from None
    battle = await session.get(Battle, vote.battle_id)
    if decision.decision is Decision.approved:
        await _count(session, battle, vote)
    log.info("arena.vote.reviewed", extra={"vote": vote_id, "decision": decision.decision.value})
    held = [h for h in await queue(session, QueueState.all, 1, vote_id + 1) if h.vote_id == vote_id]
    return held[0]


async def _count(session: AsyncSession, battle: Battle, vote: Vote) -> None:
    verdicts = VoteIn(helpfulness=vote.helpfulness, safety=vote.safety)
    await store.bump_counts(session, store.pair_rows(battle, verdicts))
    await style.bump_style_cell(session, battle, vote.helpfulness)
