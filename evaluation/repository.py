"""All SQL of the evaluation domain: runs, their planned items, and the Postgres ``ItemStore``.

The store commits every batch in its own short transaction, so a killed worker loses at most the
batch in flight. Writes are upserts keyed by fingerprint; an existing row is overwritten only when
it holds a retryable status (timeout, backend error), so a late duplicate write can never replace
an answer with a failure.
"""

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, literal_column, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction, utcnow
from core.errors import not_found
from core.keys.models import ApiKey, KeyScope
from core.registry.models import Contestant, ContestantStatus
from evaluation.models import (
    EvalGeneration,
    EvalRun,
    EvalRunItem,
    EvalScore,
    JudgeAgreement,
    RunScope,
    RunStatus,
)
from evaluation.runs.store import RETRYABLE, GenerationRecord
from evaluation.types import ScoredItem, Status

_CHUNK = 4000  # fingerprints per IN list / rows per INSERT, well under Postgres' bind-parameter limit
ACTIVE = (RunStatus.queued, RunStatus.running)
_FIRST_RUN_LOCK = 0x4C49_4252_4131  # an arbitrary advisory-lock key of this project ("LIBRA1")


@dataclass(frozen=True)
class Progress:
    total: int
    generated: int
    scored: int


def _chunks(rows: Sequence[Any]) -> list[Sequence[Any]]:
    return [rows[i : i + _CHUNK] for i in range(0, len(rows), _CHUNK)]


# --- runs -----------------------------------------------------------------------------------------


async def add_run(session: AsyncSession, **fields: Any) -> EvalRun:
    run = EvalRun(**fields)
    session.add(run)
    await session.flush()
    return run


async def get_run(session: AsyncSession, run_id: int, *, lock: bool = False) -> EvalRun:
    query = select(EvalRun).where(EvalRun.id == run_id)
    run = await session.scalar(query.with_for_update() if lock else query)
    if run is None:
        raise not_found("evaluation run", run_id)
    return run


async def latest_run(
    session: AsyncSession, model_id: int, suite: str, statuses: Sequence[RunStatus] | None = None
) -> EvalRun | None:
    query = select(EvalRun).where(EvalRun.model_id == model_id, EvalRun.suite == suite)
    if statuses:
        query = query.where(EvalRun.status.in_(statuses))
    return await session.scalar(query.order_by(EvalRun.id.desc()).limit(1))


def _live(quiet_since: datetime) -> Any:
    """Queued, or running with a job (a stalled job is recovered) or a recent saved batch; a run left
    'running' by a killed ``libra eval`` is not live, so it never blocks a new request."""
    beat = func.coalesce(EvalRun.heartbeat_at, EvalRun.started_at)
    running = (EvalRun.status == RunStatus.running) & (EvalRun.job_id.is_not(None) | (beat >= quiet_since))
    return (EvalRun.status == RunStatus.queued) | running


async def active_run(
    session: AsyncSession, model_id: int, suite: str, scope: RunScope, quiet_since: datetime
) -> EvalRun | None:
    """The pair's live run, one of the asked scope first, then a running one, then the newest."""
    query = (
        select(EvalRun)
        .where(EvalRun.model_id == model_id, EvalRun.suite == suite, _live(quiet_since))
        .order_by((EvalRun.scope == scope).desc(), (EvalRun.status == RunStatus.running).desc(),
                  EvalRun.id.desc())
    )
    return await session.scalar(query.limit(1))


async def live_runs(session: AsyncSession, suite: str, quiet_since: datetime) -> list[EvalRun]:
    query = select(EvalRun).where(EvalRun.suite == suite, _live(quiet_since)).order_by(EvalRun.id)
    return list(await session.scalars(query))


async def runs_ended_since(
    session: AsyncSession, suite: str, scope: RunScope, since: datetime
) -> list[EvalRun]:
    query = select(EvalRun).where(
        EvalRun.suite == suite, EvalRun.scope == scope, EvalRun.finished_at >= since,
        EvalRun.status.in_((RunStatus.finished, RunStatus.failed)),
    )
    return list(await session.scalars(query.order_by(EvalRun.id)))


async def latest_runs(session: AsyncSession, suite: str) -> dict[int, EvalRun]:
    """Each model's newest run of ``suite``, by model id."""
    newest = select(func.max(EvalRun.id)).where(EvalRun.suite == suite).group_by(EvalRun.model_id)
    rows = await session.scalars(select(EvalRun).where(EvalRun.id.in_(newest)))
    return {run.model_id: run for run in rows}


async def latest_failure(session: AsyncSession, model_id: int, suite: str) -> EvalRun | None:
    """The pair's most recent failed run, leaving out runs closed only because a new run superseded them."""
    query = (
        select(EvalRun)
        .where(EvalRun.model_id == model_id, EvalRun.suite == suite, EvalRun.status == RunStatus.failed,
               EvalRun.superseded_by.is_(None))
        .order_by(EvalRun.finished_at.desc().nulls_last(), EvalRun.id.desc())
    )
    return await session.scalar(query.limit(1))


async def has_unfinished_run(session: AsyncSession, model_id: int) -> bool:
    """Whether a run of the model (any suite) is queued or running."""
    query = select(EvalRun.id).where(EvalRun.model_id == model_id, EvalRun.status.in_(ACTIVE)).limit(1)
    return await session.scalar(query) is not None


async def any_run(session: AsyncSession) -> bool:
    return await session.scalar(select(EvalRun.id).limit(1)) is not None


async def lock_first_run(session: AsyncSession) -> None:
    """Held until the transaction ends: two processes starting at once queue the first runs once."""
    await session.execute(select(func.pg_advisory_xact_lock(_FIRST_RUN_LOCK)))


async def delete_run(session: AsyncSession, run_id: int) -> None:
    await session.execute(delete(EvalRun).where(EvalRun.id == run_id))


async def fail_interrupted_runs(
    session: AsyncSession, model_id: int, suite: str, keep: int, quiet_since: datetime
) -> int:
    """Other runs of the pair still 'running' with no saved batch since ``quiet_since`` died (a killed
    ``libra eval``, say); they are marked failed so their status never says running forever."""
    result = await session.execute(
        update(EvalRun)
        .where(EvalRun.model_id == model_id, EvalRun.suite == suite, EvalRun.id != keep,
               EvalRun.status == RunStatus.running,
               func.coalesce(EvalRun.heartbeat_at, EvalRun.started_at) < quiet_since)
        .values(status=RunStatus.failed, finished_at=utcnow(),
                error="interrupted: the process running it stopped; finished items are kept")
    )
    return result.rowcount or 0


async def add_run_items(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> None:
    for chunk in _chunks(rows):
        await session.execute(insert(EvalRunItem).values(list(chunk)).on_conflict_do_nothing())


async def run_progress(session: AsyncSession, run_id: int) -> Progress:
    item = EvalRunItem
    query = (
        select(func.count(), func.count(EvalGeneration.fingerprint), func.count(EvalScore.fingerprint))
        .select_from(item)
        .outerjoin(EvalGeneration, EvalGeneration.fingerprint == item.generation_fingerprint)
        .outerjoin(EvalScore, EvalScore.fingerprint == item.score_fingerprint)
        .where(item.run_id == run_id)
    )
    total, generated, scored = (await session.execute(query)).one()
    return Progress(total, generated, scored)


async def first_generation_error(session: AsyncSession, run_id: int) -> str | None:
    query = (
        select(EvalGeneration.error)
        .join(EvalRunItem, EvalRunItem.generation_fingerprint == EvalGeneration.fingerprint)
        .where(EvalRunItem.run_id == run_id, EvalGeneration.error.is_not(None))
        .limit(1)
    )
    return await session.scalar(query)


_FIRST_EVALUATION = (ContestantStatus.pending, ContestantStatus.evaluating)


async def finish_first_evaluation(session: AsyncSession, model_id: int, auto_approve: bool) -> ContestantStatus | None:
    """After a model's first finished run: a model submitted with a submitter key waits for an admin's
    approval (``evaluated``) unless ``auto_approve``; any other becomes ``active`` (drawn, ranked) as before.
    None when the model was past its first evaluation already."""
    model = await session.get_one(Contestant, model_id, with_for_update=True)
    if model.status not in _FIRST_EVALUATION:
        return None
    submitter = await session.scalar(select(ApiKey.scope).where(ApiKey.id == model.submitted_by))
    reviewed = submitter is not None and submitter != KeyScope.admin and not auto_approve
    model.status = ContestantStatus.evaluated if reviewed else ContestantStatus.active
    return model.status


async def reset_if_evaluating(session: AsyncSession, model_id: int) -> None:
    """A first run that failed leaves its model ``pending`` again: nothing evaluates it now."""
    await session.execute(
        update(Contestant)
        .where(Contestant.id == model_id, Contestant.status == ContestantStatus.evaluating)
        .values(status=ContestantStatus.pending)
    )


def _leaderboard_runs(suite: str, model_id: int | None = None) -> Any:
    """Per model, the run the leaderboard reads: the latest finished *full* run, or, for a model that
    has none, its latest finished preview. So a later ``--limit`` run never replaces full results."""
    preferred = func.row_number().over(
        partition_by=EvalRun.model_id,
        order_by=((EvalRun.scope == RunScope.full).desc(), EvalRun.finished_at.desc(), EvalRun.id.desc()),
    )
    ranked = select(EvalRun.id, EvalRun.model_id, preferred.label("rank")).where(
        EvalRun.status == RunStatus.finished, EvalRun.suite == suite
    )
    if model_id is not None:
        ranked = ranked.where(EvalRun.model_id == model_id)
    ranked = ranked.subquery()
    return select(ranked.c.id, ranked.c.model_id).where(ranked.c.rank == 1).subquery()


async def leaderboard_runs(session: AsyncSession, suite: str = "default") -> dict[int, EvalRun]:
    """The run :func:`latest_scored_items` reads for each model, by model id (its scope and size)."""
    chosen = _leaderboard_runs(suite)
    rows = await session.scalars(select(EvalRun).join(chosen, chosen.c.id == EvalRun.id))
    return {run.model_id: run for run in rows}


async def leaderboard_run(session: AsyncSession, model_id: int, suite: str) -> EvalRun | None:
    chosen = _leaderboard_runs(suite, model_id)
    return await session.scalar(select(EvalRun).join(chosen, chosen.c.id == EvalRun.id))


async def latest_scored_items(session: AsyncSession, suite: str = "default") -> dict[int, list[ScoredItem]]:
    """Every item of the run each model is ranked on (:func:`leaderboard_runs`), by model id.

    Items with ``held_out`` set must never be served or exported; they may enter aggregates.
    """
    latest = _leaderboard_runs(suite)
    item = EvalRunItem
    query = (
        select(latest.c.model_id, item.task, item.item_id, item.category, item.axis, item.held_out,
               item.labels, EvalScore.status, EvalScore.score, EvalScore.details, EvalScore.scorer_version)
        .select_from(latest)
        .join(item, item.run_id == latest.c.id)
        .outerjoin(EvalScore, EvalScore.fingerprint == item.score_fingerprint)
        .order_by(latest.c.model_id, item.task, item.item_id)
    )
    found: dict[int, list[ScoredItem]] = {}
    for row in await session.execute(query):
        # A planned item with no score row cannot occur in a finished run; it would count as a failure.
        found.setdefault(row.model_id, []).append(ScoredItem(
            row.task, row.item_id, row.status or Status.BACKEND_ERROR,
            row.score if row.status is Status.OK else None, axis=row.axis, category=row.category,
            held_out=row.held_out, labels=row.labels or {}, details=row.details or {},
            scorer_version=row.scorer_version or "",
        ))
    return found


# --- per-item rows: the Postgres ItemStore --------------------------------------------------------

OnSaved = Callable[[str, int], None]
"""Told ``(phase, n)`` after each committed batch: phase is "generate" or "score"."""


class PostgresItemStore:
    """:class:`evaluation.runs.store.ItemStore` on Postgres; each save is one committed transaction."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        run_id: int | None = None,
        on_saved: OnSaved | None = None,
    ) -> None:
        self._sessions = sessions
        self._run_id = run_id
        self._on_saved = on_saved

    async def get_generations(self, fingerprints: Sequence[str]) -> Mapping[str, GenerationRecord]:
        found: dict[str, GenerationRecord] = {}
        async with self._sessions() as session:
            for chunk in _chunks(fingerprints):
                query = select(EvalGeneration).where(EvalGeneration.fingerprint.in_(chunk))
                rows = await session.scalars(query)
                found.update({row.fingerprint: _generation_record(row) for row in rows})
        return found

    async def save_generations(self, records: Sequence[GenerationRecord]) -> None:
        if records:
            await self._upsert(EvalGeneration, [_generation_row(r) for r in records])
            self._saved("generate", len(records))

    async def get_scores(self, fingerprints: Sequence[str]) -> Mapping[str, ScoredItem]:
        found: dict[str, ScoredItem] = {}
        async with self._sessions() as session:
            for chunk in _chunks(fingerprints):
                rows = await session.scalars(select(EvalScore).where(EvalScore.fingerprint.in_(chunk)))
                found.update({row.fingerprint: _score_record(row) for row in rows})
        return found

    async def save_scores(self, records: Sequence[ScoredItem]) -> None:
        if records:
            await self._upsert(EvalScore, [_score_row(r) for r in records])
            self._saved("score", len(records))

    async def _upsert(self, table: type[EvalGeneration | EvalScore], rows: list[dict[str, Any]]) -> None:
        async with transaction(self._sessions) as session:
            statement = insert(table).values(rows)
            kept = ("fingerprint", "created_at")
            replaced = {name: statement.excluded[name] for name in rows[0] if name not in kept}
            await session.execute(statement.on_conflict_do_update(
                index_elements=["fingerprint"], set_=replaced,
                where=table.status.in_(list(RETRYABLE)),
            ))
            if self._run_id is not None:
                beat = update(EvalRun).where(EvalRun.id == self._run_id).values(heartbeat_at=utcnow())
                await session.execute(beat)

    def _saved(self, phase: str, n: int) -> None:
        if self._on_saved is not None:
            self._on_saved(phase, n)


def _generation_row(record: GenerationRecord) -> dict[str, Any]:
    usage = record.usage
    now = utcnow()
    return {
        "fingerprint": record.fingerprint, "task": record.task, "task_version": record.task_version,
        "item_id": record.item_id, "messages": [dict(m) for m in record.messages], "status": record.status,
        "text": _without_nul(record.text), "error": _without_nul(record.error),
        "finish_reason": usage.get("finish_reason"),
        "prompt_tokens": usage.get("prompt_tokens"), "completion_tokens": usage.get("completion_tokens"),
        "latency_s": usage.get("latency_s"), "created_at": now, "updated_at": now,
    }


def _without_nul(value: str | None) -> str | None:
    """Postgres text cannot hold NUL, and a model may well emit one."""
    return value.replace("\x00", "") if value is not None else None


def _generation_record(row: EvalGeneration) -> GenerationRecord:
    usage = {"finish_reason": row.finish_reason, "prompt_tokens": row.prompt_tokens,
             "completion_tokens": row.completion_tokens, "latency_s": row.latency_s}
    return GenerationRecord(
        fingerprint=row.fingerprint, task=row.task, task_version=row.task_version, item_id=row.item_id,
        messages=tuple(row.messages), status=row.status, text=row.text, error=row.error,
        usage={k: v for k, v in usage.items() if v is not None},
    )


def _score_row(record: ScoredItem) -> dict[str, Any]:
    now = utcnow()
    return {
        "fingerprint": record.fingerprint, "generation_fingerprint": record.generation_fingerprint,
        "task": record.task, "item_id": record.item_id, "scorer_version": record.scorer_version,
        "status": record.status, "score": record.score if record.status is Status.OK else None,
        "extracted": record.extracted, "scored_by": record.scored_by, "outcome": record.outcome,
        "details": dict(record.details), "created_at": now, "updated_at": now,
    }


def _score_record(row: EvalScore) -> ScoredItem:
    return ScoredItem(
        row.task, row.item_id, row.status, row.score, extracted=row.extracted, scored_by=row.scored_by,
        outcome=row.outcome, details=row.details, fingerprint=row.fingerprint,
        generation_fingerprint=row.generation_fingerprint, scorer_version=row.scorer_version,
    )


async def runs_without_live_job(session: AsyncSession) -> list[tuple[EvalRun, Contestant]]:
    """Queued or running runs whose job is neither waiting nor running: a stop or a crash lost it."""
    live = (select(literal_column("1")).select_from(text("procrastinate_jobs AS j"))
            .where(text("j.id = eval_runs.job_id AND j.status IN ('todo', 'doing')")))
    query = (
        select(EvalRun, Contestant)
        .join(Contestant, Contestant.id == EvalRun.model_id)
        .where(EvalRun.status.in_(ACTIVE), EvalRun.job_id.is_not(None), ~live.exists())
    )
    return [(run, model) for run, model in (await session.execute(query)).all()]


# --- judge agreement with the gold set ------------------------------------------------------------


async def judge_agreement(session: AsyncSession, judge_version: str, gold_version: str) -> JudgeAgreement | None:
    return await session.scalar(select(JudgeAgreement).where(
        JudgeAgreement.judge_version == judge_version, JudgeAgreement.gold_version == gold_version))


async def save_judge_agreement(session: AsyncSession, **fields: Any) -> None:
    """Insert or replace the row of one (judge version, gold version)."""
    row = {**fields, "created_at": utcnow()}
    statement = insert(JudgeAgreement).values(**row)
    await session.execute(statement.on_conflict_do_update(
        constraint="uq_judge_agreement_version",
        set_={key: statement.excluded[key] for key in row if key not in ("judge_version", "gold_version")},
    ))


async def judge_agreements(session: AsyncSession) -> list[JudgeAgreement]:
    """Every measured judge version, newest first."""
    return list(await session.scalars(select(JudgeAgreement).order_by(JudgeAgreement.created_at.desc())))
