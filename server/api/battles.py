import uuid

from fastapi import APIRouter, status

from arena import service
from arena.schemas import BattleIn, BattleOut, VoteIn
from evaluation.tasks.taxonomy import HARM_CATEGORIES
from server.deps import RuntimeDep
from server.limits import BattleLimit, VoteLimit

router = APIRouter(prefix="/battles", tags=["arena"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[BattleLimit])
async def create_battle(battle: BattleIn, runtime: RuntimeDep) -> BattleOut:
    """Two anonymous models answer the prompt; their names are revealed after the vote."""
    return await service.start_battle(runtime.sessions, runtime.backends, battle.prompt, runtime.battle_limits,
                                      runtime.settings)


@router.get("/harm-categories")
async def harm_categories() -> dict[str, str]:
    """The harm categories a vote may name (the 19 of PKU-SafeRLHF): slug to label."""
    return dict(HARM_CATEGORIES)


@router.get("/{battle_id}")
async def get_battle(battle_id: uuid.UUID, runtime: RuntimeDep) -> BattleOut:
    return await service.get(runtime.sessions, battle_id)


@router.post("/{battle_id}/vote", dependencies=[VoteLimit])
async def vote(battle_id: uuid.UUID, vote: VoteIn, runtime: RuntimeDep) -> BattleOut:
    """One vote per battle (a second gets 409); the answer reveals both models."""
    return await service.record_vote(runtime.sessions, battle_id, vote)
