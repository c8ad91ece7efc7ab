"""Registers the embedded default contestants, once; later runs leave existing rows alone."""

import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from inference import DEFAULT_CONTESTANTS
from server import contestants

log = logging.getLogger(__name__)

# Replicas started together (compose, Kubernetes) seed at the same moment: this transaction-level lock
# makes the second wait for the first's commit and then find the rows, instead of failing on a duplicate.
SEED_LOCK_KEY = 0x6C69627261_5EED  # "libra" + "seed"; any fixed 64-bit key unused elsewhere


async def seed_defaults(session: AsyncSession) -> list[str]:
    await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SEED_LOCK_KEY})
    existing = {m.slug for m in await registry.list_all(session)}
    added = []
    for default in DEFAULT_CONTESTANTS:
        if default.slug in existing:
            continue
        entry = ContestantIn(slug=default.slug, display_name=default.display_name,
                             organisation=default.organisation, description=default.description,
                             config=dict(default.config))
        await contestants.register(session, entry, ContestantStatus.active, actor="system")
        added.append(default.slug)
    if added:
        log.info("registry.defaults.seeded", extra={"models": added})
    return added


