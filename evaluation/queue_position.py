"""Where a queued evaluation stands in its job queue, for the submitter who waits on it (issue 12, item 4).

The order is the job queue's own: a worker fetches the waiting job of highest priority first, then the
oldest (procrastinate's `ORDER BY priority DESC, id ASC`), per queue (`cpu`, `gpu`). So the position is
read from the waiting jobs themselves, not guessed from the runs' creation times: the first start's full
runs wait at a lower priority behind every submission.
"""

from collections.abc import Sequence

from pydantic import BaseModel, Field
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from evaluation.jobs import RUN_TASK

# Only evaluation jobs that wait ('todo'); one row per waiting job, a handful per model at most.
_POSITIONS = text("""
    WITH waiting AS (
        SELECT j.id AS job_id, j.queue_name,
               row_number() OVER (PARTITION BY j.queue_name ORDER BY j.priority DESC, j.id) AS position,
               count(*) OVER (PARTITION BY j.queue_name) AS waiting
        FROM procrastinate_jobs AS j
        WHERE j.status = 'todo' AND j.task_name = :task
    )
    SELECT r.id, w.position, w.waiting, w.queue_name
    FROM eval_runs AS r JOIN waiting AS w ON w.job_id = r.job_id
    WHERE r.id IN :run_ids
""").bindparams(bindparam("run_ids", expanding=True))


class QueuePositionOut(BaseModel):
    """A queued run's place in its queue: 1 = the next evaluation a worker of that queue starts."""

    run_id: int
    position: int = Field(ge=1, description="1 = next; counted among evaluations waiting in the same queue.")
    waiting: int = Field(ge=1, description="Evaluations waiting in that queue, this one included.")
    queue: str = Field(description="The job queue: `cpu`, or `gpu` (served by GPU workers only).")


async def queue_positions(session: AsyncSession, run_ids: Sequence[int]) -> dict[int, QueuePositionOut]:
    """By run id, for those of `run_ids` whose job still waits (a run whose job a worker has taken has none)."""
    if not run_ids:
        return {}
    rows = await session.execute(_POSITIONS, {"task": RUN_TASK, "run_ids": list(run_ids)})
    return {row.id: QueuePositionOut(run_id=row.id, position=row.position, waiting=row.waiting,
                                     queue=row.queue_name) for row in rows}
