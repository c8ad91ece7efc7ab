import uuid

from fastapi import APIRouter, status

from arena import service
from arena.schemas import BattleIn, BattleOut
from evaluation.tasks.taxonomy import HARM_CATEGORIES
from server.deps import RuntimeDep
from server.limits import BattleLimit
from server.voters import VoterDep

router = APIRouter(prefix="/battles", tags=["arena"])


@router.post("", status_code=status.HTTP_201_CREATED, dependencies=[BattleLimit])
async def create_battle(battle: BattleIn, runtime: RuntimeDep, voter: VoterDep) -> BattleOut:
    """Two anonymous models answer the prompt; their names are revealed after the vote."""
    return await service.start_battle(runtime.sessions, runtime.backends, battle, runtime.battle_limits,
                                      runtime.settings, voter)


@router.get("/harm-categories")
async def harm_categories() -> dict[str, str]:
    """The harm categories a vote may name (the 19 of PKU-SafeRLHF): slug to label."""
    return dict(HARM_CATEGORIES)


@router.get("/{battle_id}")
async def get_battle(battle_id: uuid.UUID, runtime: RuntimeDep) -> BattleOut:
    return await service.get(runtime.sessions, battle_id)
