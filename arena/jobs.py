"""The arena's jobs. Each job is one transaction, committed at its edge."""

import logging
from datetime import timedelta

import procrastinate

from arena import repository as repo
from core.db import transaction, utcnow

log = logging.getLogger(__name__)


async def fail_stale_battles(context: procrastinate.JobContext, timestamp: int) -> int:
    """Housekeeping: a battle left 'generating' by a crash becomes 'failed' and unvotable."""
    sessions, settings = context.additional_context["sessions"], context.additional_context["settings"]
    cutoff = utcnow() - timedelta(minutes=settings.stale_battle_minutes)
    async with transaction(sessions) as session:
        failed = await repo.fail_stale_battles(session, cutoff)
    log.info("arena.housekeeping.done", extra={"stale_battles_failed": failed, "scheduled_at": timestamp})
    return failed


def build_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint per job app: procrastinate renames the tasks of a blueprint it absorbs."""
    tasks = procrastinate.Blueprint()
    tasks.task(name="fail_stale_battles", queue="housekeeping", queueing_lock="fail_stale_battles",
               pass_context=True)(fail_stale_battles)
    return tasks
