"""At start-up, battles left ``generating`` by a killed process on this host are failed at once.

Before this, such a battle stayed ``generating`` until the housekeeping job failed it, minutes later
(``LIBRA_STALE_BATTLE_MINUTES``), and a visitor following it saw nothing. A battle records which
process generates it (``arena.generator``); a process that opens its runtime fails those whose process
on this host is gone, with the same fields as any failed generation (``repository.fail_battle``).
"""

import logging

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import generator
from arena import repository as repo
from core.db import transaction

log = logging.getLogger(__name__)


async def close_orphans(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Fails the generating battles of dead processes on this host; returns how many."""
    async with transaction(sessions) as session:
        names = await repo.generators_on_host(session, generator.this_host())
        dead = [name for name in names if not generator.is_alive_here(name)]
        failed = await repo.fail_battles_of(session, dead) if dead else 0
    if failed:
        log.warning("arena.orphans.failed", extra={"battles": failed, "processes": len(dead)})
    return failed
