import uuid

from fastapi import APIRouter

from arena import votes
from arena.schemas import BattleOut, VoteIn
from server.deps import RuntimeDep
from server.limits import VoteLimit
from server.voters import VoterDep

router = APIRouter(prefix="/battles", tags=["arena"])


@router.post("/{battle_id}/vote", dependencies=[VoteLimit])
async def vote(battle_id: uuid.UUID, vote: VoteIn, runtime: RuntimeDep, voter: VoterDep) -> BattleOut:
    """One vote per battle (a second gets 409); the answer reveals both models."""
    return await votes.record_vote(runtime.sessions, battle_id, vote, voter)
