"""Registering and retiring contestants: validation of the backend config, audit, status rules."""

import logging

import procrastinate
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.audit import repository as audit
from core.db import transaction
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from evaluation.jobs import queue_evaluation
from evaluation.models import RunReason
from inference import parse_backend_config

log = logging.getLogger(__name__)


def validated_config(config: dict) -> dict:
    """The config as the backend reads it; raises a 422 that names the offending field."""
    try:
        parsed = parse_backend_config(config)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("config", *first["loc"]))
        raise LibraError(f"{where}: {first['msg']}", status=422, code="invalid_config", field=where) from None
    return parsed.model_dump(mode="json")


async def register(
    session: AsyncSession, entry: ContestantIn, status: ContestantStatus, actor: str, key_id: int | None = None
) -> Contestant:
    config = validated_config(entry.config)
    contestant = await registry.add(
        session, slug=entry.slug, display_name=entry.display_name, organisation=entry.organisation,
        description=entry.description, backend_kind=config["kind"], config=config, status=status,
        submitted_by=key_id,
    )
    audit.record(session, actor, "model.registered", f"model:{entry.slug}", status=status.value)
    return contestant


async def submit(
    sessions: async_sessionmaker[AsyncSession],
    jobs: procrastinate.App,
    settings: Settings,
    entry: ContestantIn,
    key_id: int,
) -> Contestant:
    """A submitted model is committed as pending, then its first evaluation is queued."""
    actor = f"key:{key_id}"
    async with transaction(sessions) as session:
        contestant = await register(session, entry, ContestantStatus.pending, actor, key_id)
    try:
        await queue_evaluation(sessions, jobs, settings, contestant.slug, None, RunReason.submission, actor)
    except Exception:  # the submission stands; the periodic re-evaluation also picks up pending models
        log.exception("evaluation.queue.failed", extra={"model": contestant.slug})
    return contestant


async def retire(session: AsyncSession, slug: str, actor: str) -> Contestant:
    contestant = await registry.get_by_slug(session, slug)
    await registry.retire(session, contestant)
    audit.record(session, actor, "model.retired", f"model:{slug}")
    return contestant
