import uuid

from fastapi import APIRouter, status

from arena import service
from arena.schemas import BattleIn, BattleOut, VoteIn
from server.deps import RuntimeDep
from server.limits import BattleLimit, VoteLimit

router = APIRouter(prefix="/battles", tags=["arena"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[BattleLimit])
async def create_battle(battle: BattleIn, runtime: RuntimeDep) -> BattleOut:
    """Two anonymous models answer the prompt; their names are revealed after the vote."""
    return await service.start_battle(runtime.sessions, runtime.backends, battle.prompt, runtime.battle_limits,
                                      runtime.settings)


@router.get("/{battle_id}")
async def get_battle(battle_id: uuid.UUID, runtime: RuntimeDep) -> BattleOut:
    return await service.get(runtime.sessions, battle_id)


@router.post("/{battle_id}/vote", dependencies=[VoteLimit])
async def vote(battle_id: uuid.UUID, vote: VoteIn, runtime: RuntimeDep) -> BattleOut:
    """One vote per battle (a second gets 409); the answer reveals both models."""
    return await service.record_vote(runtime.sessions, battle_id, vote)
