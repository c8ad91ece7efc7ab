"""Admins: pairing weights and models paused from the arena (issue 11, items 5 and 6)."""

from typing import Annotated

from fastapi import APIRouter, Path

from arena import pairing_admin
from arena.pairing_admin import PausedOut, WeightIn, WeightOut
from core.registry.schemas import SLUG_PATTERN
from server.deps import AdminDep, RuntimeDep, SessionDep

router = APIRouter(prefix="/admin/arena", tags=["admin"])

# The registry's own slug rule: anything else (a NUL, spaces) is a 422 before it reaches Postgres.
SlugPath = Annotated[str, Path(pattern=SLUG_PATTERN, description="The model's slug.")]


@router.get("/weights")
async def list_weights(session: SessionDep, runtime: RuntimeDep, key: AdminDep) -> list[WeightOut]:
    """Every active model's draw weight (1 when none is stored), counted votes, new-model boost, pause."""
    return await pairing_admin.list_weights(session, runtime.settings)


@router.put("/weights/{slug}")
async def set_weight(slug: SlugPath, change: WeightIn, session: SessionDep, runtime: RuntimeDep,
                     key: AdminDep) -> WeightOut:
    """Sets a model's draw weight (0 = never drawn); audited."""
    return await pairing_admin.set_weight(session, slug, change, f"key:{key.id}", runtime.settings)


@router.get("/paused")
async def list_paused(session: SessionDep, key: AdminDep) -> list[PausedOut]:
    """Models paused from pairing after failing in a row, with their last error."""
    return await pairing_admin.list_paused(session)


@router.post("/paused/{slug}/resume")
async def resume(slug: SlugPath, session: SessionDep, key: AdminDep) -> list[PausedOut]:
    """Lets a paused model be drawn again (404 unknown model, 409 not paused); returns what stays paused."""
    await pairing_admin.resume(session, slug, f"key:{key.id}")
    return await pairing_admin.list_paused(session)
