"""Models that keep failing in the arena: counted per answer, paused from pairing at a limit.

A battle's answers and the health they change commit together (arena.turn_store, in one statement);
`record_answer` runs the same statements in a session's transaction. A paused model is never drawn
(arena.pairing) until an admin resumes it; resuming starts a fresh run.
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from arena import pairing_repository as repo
from arena import turn_store
from arena.turn_store import Failure
from core.db import utcnow
from core.errors import conflict
from core.registry import repository as registry
from core.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_FAILURES_TO_PAUSE = 3


@dataclass(frozen=True)
class PausedModel:
    slug: str
    model_id: int
    failures_in_row: int
    last_error: str | None
    last_failure_at: datetime | None
    paused_at: datetime


def failures_to_pause(settings: Settings | None) -> int:
    return int(getattr(settings, "arena_failures_to_pause", DEFAULT_FAILURES_TO_PAUSE))


async def record_answer(session: AsyncSession, model_id: int, ok: bool, error: str | None,
                        settings: Settings | None = None) -> None:
    """One arena answer of a model: a success resets its failure run, a failure extends it."""
    conn = (await (await session.connection()).get_raw_connection()).driver_connection
    if ok:
        await turn_store.reset_failures(conn, [model_id])
        return
    now = utcnow()
    log_failure(await turn_store.add_failure(conn, model_id, error, failures_to_pause(settings), now), now)


def log_failure(failure: Failure, now: datetime) -> None:
    """The warning of a failure that reached the limit (arena.turn_store stored it with the answers)."""
    if failure.paused_at == now:  # a model already paused keeps its first time
        log.warning("arena.model.paused", extra={"model_id": failure.model_id,
                                                 "failures_in_row": failure.failures_in_row, "error": failure.error})


async def paused_models(session: AsyncSession) -> list[PausedModel]:
    return [PausedModel(model.slug, model.id, health.failures_in_row, health.last_error, health.last_failure_at,
                        health.paused_at)
            for health, model in await repo.paused(session) if health.paused_at is not None]


async def resume(session: AsyncSession, slug: str) -> int:
    """Lets a paused model be drawn again; 404 for an unknown slug, 409 when it is not paused."""
    model = await registry.get_by_slug(session, slug)
    if not await repo.resume(session, model.id):
        raise conflict(f"model {slug!r} is not paused")
    log.info("arena.model.resumed", extra={"model_id": model.id, "slug": slug})
    return model.id
