"""Attack mode and the prompt pool (issue 11, item 4)."""

from fastapi import APIRouter

from evaluation import attacks

router = APIRouter(prefix="/arena", tags=["arena"])


@router.get("/attacks")
async def list_attacks() -> list[dict[str, str]]:
    """The attack transforms a visitor may apply to a prompt (the evaluation's own library)."""
    return [{"name": a.name, "description": a.description} for a in attacks.list_attacks()]
