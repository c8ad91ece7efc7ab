"""The arena's jobs. Each job is one transaction, committed at its edge."""

import logging
from datetime import timedelta

import procrastinate

from arena import pairing
from arena import repository as repo
from core.db import transaction, utcnow

log = logging.getLogger(__name__)


async def fail_stale_battles(context: procrastinate.JobContext, timestamp: int) -> int:
    """Housekeeping: a battle left 'generating' by a crash becomes 'failed', and a ready battle nobody
    voted on within the vote window becomes 'expired'; neither can be voted on. Returns both counts' sum."""
    sessions, settings = context.additional_context["sessions"], context.additional_context["settings"]
    now = utcnow()
    async with transaction(sessions) as session:
        failed = await repo.fail_stale_battles(session, now - timedelta(minutes=settings.stale_battle_minutes))
        expired = await repo.expire_battles(session, now - timedelta(minutes=settings.arena_vote_window_minutes))
    log.info("arena.housekeeping.done",
             extra={"stale_battles_failed": failed, "battles_expired": expired, "scheduled_at": timestamp})
    return failed + expired


async def refresh_pair_scores(context: procrastinate.JobContext, timestamp: int) -> int:
    """Active pairing: recompute every pair's score from the current fit, under a new version."""
    sessions = context.additional_context["sessions"]
    async with transaction(sessions) as session:
        version, pairs = await pairing.refresh_scores(session)
    log.info("arena.pairing.refresh.done", extra={"version": version, "pairs": pairs, "scheduled_at": timestamp})
    return version


def build_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint per job app: procrastinate renames the tasks of a blueprint it absorbs."""
    tasks = procrastinate.Blueprint()
    tasks.task(name="fail_stale_battles", queue="housekeeping", queueing_lock="fail_stale_battles",
               pass_context=True)(fail_stale_battles)
    tasks.task(name="refresh_pair_scores", queue="housekeeping", queueing_lock="refresh_pair_scores",
               pass_context=True)(refresh_pair_scores)
    return tasks
