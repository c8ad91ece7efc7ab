"""The snapshot job: read counts and scores, compute in a thread, store a new version if anything changed."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import procrastinate
import psycopg
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import ranking
from arena import repository as arena_repo
from arena.models import Vote
from core.db import transaction
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.settings import Settings
from server.leaderboard import repository, service

log = logging.getLogger(__name__)


# Ranked and shown: retired models stay, so their games keep holding the others' ratings in place.
BOARD_STATUSES = (ContestantStatus.active, ContestantStatus.retired)


def snapshot_config(settings: Settings, required: tuple = ()) -> ranking.SnapshotConfig:
    return ranking.SnapshotConfig(
        bootstrap_rounds=settings.leaderboard_bootstrap_rounds,
        seed=settings.leaderboard_seed,
        min_votes=settings.leaderboard_min_votes,
        # Blending needs a fixed anchor model; ranking refuses to blend without one.
        anchor=settings.leaderboard_anchor,
        scores=ranking.ScoreConfig(required=required, missing=settings.leaderboard_missing,
                                   min_items_per_category=settings.eval_min_items_per_category),
        blend=ranking.ArenaBlend(capability_weight=settings.arena_blend_capability,
                                 safety_weight=settings.arena_blend_safety),
    )


# How long a snapshot waits for the vote transactions in flight before it gives up (and fails, to run again).
VOTES_LOCK_TIMEOUT_S = 10.0


async def _view_with_no_vote_in_flight(gate: Any) -> str:
    """A view of the database (an exported snapshot id) taken once no vote is being written.

    A vote batch takes its vote ids when it inserts and commits a little later. A view taken in between
    would see a later batch's votes but not that one's, so the replay's cutoff (the highest vote id seen)
    would let in votes the counts left out. `LOCK ... IN SHARE MODE`, before the first query fixes the
    view, waits for the transactions writing votes and holds new ones back until ``gate``'s transaction
    ends, which is as soon as the reader has imported the view.
    """
    await gate.connection(execution_options={"isolation_level": "REPEATABLE READ"})
    await gate.execute(text(f"SET LOCAL lock_timeout = '{round(VOTES_LOCK_TIMEOUT_S * 1000)}ms'"))
    await gate.execute(text(f"LOCK TABLE {Vote.__tablename__} IN SHARE MODE"))
    return str(await gate.scalar(text("SELECT pg_export_snapshot()")))


async def share_view(sessions: Any, reader: Any) -> None:
    """Gives ``reader``, a REPEATABLE READ transaction that has not queried yet, a view taken once no vote
    is being written; votes are held back from the lock until the reader has it (a few ms)."""
    try:
        async with transaction(sessions) as gate:
            view = await _view_with_no_vote_in_flight(gate)
            await reader.execute(text(f"SET TRANSACTION SNAPSHOT '{view}'"))
    except DBAPIError as error:
        if not isinstance(error.orig, psycopg.errors.LockNotAvailable):
            raise
        raise LibraError(f"the snapshot waited {VOTES_LOCK_TIMEOUT_S:g} s for votes being written and gave up; "
                         "the next one will try again", status=503, code="snapshot_busy") from None


@asynccontextmanager
async def view_reader(sessions: Any) -> AsyncIterator[Any]:
    """A REPEATABLE READ transaction with `share_view`'s view. Its connection is checked out before the
    votes' lock is asked for, so votes are never held while it waits for one."""
    async with transaction(sessions) as reader:
        await reader.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        await share_view(sessions, reader)
        yield reader


async def read_inputs(sessions: Any, settings: Settings) -> service.Inputs:
    """Every input in one view, with the replay record that names the votes it counted."""
    async with view_reader(sessions) as reader:
        return service.Inputs(
            models=[m for m in await registry.list_all(reader) if m.status in BOARD_STATUSES],
            helpfulness=await arena_repo.pair_counts(reader, "helpfulness"),
            safety=await arena_repo.pair_counts(reader, "safety"),
            style_cells=await repository.style_cells(reader),
            items=await service.scored_items(reader, settings.eval_suite),
            runs=await service.scored_runs(reader, settings.eval_suite),
            replay=await repository.replay_record(reader),
        )


async def take_snapshot(sessions: Any, settings: Settings, trigger: str) -> int | None:
    """Returns the new version, or None when nothing changed since the latest snapshot."""
    inputs = await read_inputs(sessions, settings)
    config = snapshot_config(settings, service.required_categories(settings))
    # The maths takes seconds at scale: off the event loop, so the worker keeps heartbeating.
    computed = await asyncio.to_thread(service.compute, inputs, config)
    # So are the rows: the per-category and per-attack intervals cost about 15 ms a model.
    body = await asyncio.to_thread(service.payload, computed, inputs.models, inputs)
    # Without the replay record: votes kept out of the ratings move the cutoff but change no number.
    etag = service.etag_of(body)
    body["config"] = {**body["config"], "replay": service.replay_record(inputs)}
    async with transaction(sessions) as session:
        latest = await repository.latest(session)
        if latest is not None and latest.etag == etag:
            return None
        stored = await repository.add(session, trigger=trigger, config=body["config"], payload=body, etag=etag)
    log.info("leaderboard.snapshot.stored", extra={"version": stored.id, "trigger": trigger,
                                                   "models": len(body["models"])})
    return stored.id


async def snapshot(
    context: procrastinate.JobContext, trigger: str = "evaluation", timestamp: int | None = None
) -> int | None:
    """On demand: after an evaluation run (which passes `timestamp`) or an admin's request."""
    extra = context.additional_context
    return await take_snapshot(extra["sessions"], extra["settings"], trigger)


async def periodic_snapshot(context: procrastinate.JobContext, timestamp: int) -> int | None:
    extra = context.additional_context
    return await take_snapshot(extra["sessions"], extra["settings"], "periodic")


def build_blueprint() -> procrastinate.Blueprint:
    """A fresh blueprint per job app (procrastinate renames the tasks of a blueprint it absorbs)."""
    tasks = procrastinate.Blueprint()
    # Short jobs: the housekeeping queue, whose worker slot never waits behind an evaluation.
    options = {"queue": "housekeeping", "lock": "ranking-snapshot", "pass_context": True}
    tasks.task(name="snapshot", queueing_lock="ranking:snapshot", **options)(snapshot)
    tasks.task(name="periodic_snapshot", queueing_lock="ranking-periodic-snapshot", **options)(periodic_snapshot)
    return tasks
