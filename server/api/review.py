"""Admins: the review queue of votes held by the anomaly rules (issue 11, item 8)."""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from arena import review
from server.deps import AdminDep, SessionDep

router = APIRouter(prefix="/admin/arena", tags=["admin"])

MAX_ID = 2**31 - 1  # votes.id is a Postgres integer: a larger id is a 422, not a database error
VoteId = Annotated[int, Path(ge=1, le=MAX_ID, description="The held vote's id.")]


@router.get("/review")
async def review_queue(
    session: SessionDep, _: AdminDep, state: review.QueueState = review.QueueState.pending,
    limit: Annotated[int, Query(ge=1, le=500)] = 100, before_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
) -> list[review.HeldVote]:
    """Votes held for review, newest first, with the rules that held them and their battle."""
    return await review.queue(session, state, limit, before_id)


@router.post("/review/{vote_id}")
async def decide(vote_id: VoteId, decision: review.DecisionIn, session: SessionDep, key: AdminDep) -> review.HeldVote:
    """Approve (the vote is counted now, as it would have been) or reject (it stays stored, out of the
    ratings). One decision per vote: a second gets 409. Nothing is deleted."""
    return await review.decide(session, vote_id, decision, reviewer=f"key:{key.prefix}")
