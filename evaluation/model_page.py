"""What a model page shows of evaluations: per-task and per-category scores with intervals, and a few
sample answers with their verdicts. Reads only, from the run the leaderboard ranks the model on.

Held-out items never appear: not as a sample, not in a count. A sample must be public in that run,
must never have been held out in any run of the model, must not be a private-folder item, and, when
the deployment holds items out by a secret seed, must not be held out in this cycle or the next
(the secret picks a new probe every week: an item public last week may be this week's probe, as
`arena.pool` guards for the arena's prompts).

Its SQL lives here rather than in `repository.py` because these are read-only views of one model
that nothing else reads; both statements are bounded (one run's public items, grouped per task and
status; at most `MAX_SAMPLES` rows).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.errors import LibraError
from core.registry.models import Contestant
from core.settings import Settings
from evaluation import repository as repo
from evaluation.models import EvalRun
from evaluation.schemas import (
    CategoryScoreOut,
    ModelSamplesOut,
    ModelScoresOut,
    SampleMessageOut,
    SampleOut,
    ScoredRunOut,
    TaskScoreOut,
)
from evaluation.service import cycle_id_at
from evaluation.tasks import private
from evaluation.tasks.private import PRIVATE_PREFIX
from evaluation.tasks.registry import default_registry
from ranking import libra
from ranking.proportions import JEFFREYS, MEAN_OF_JEFFREYS, jeffreys_interval, mean_of_jeffreys

LEVEL = 0.95
MAX_SAMPLES = 20
PROMPT_CHARS = 4000  # per message: attack wrappings can be long; the page shows the start
ANSWER_CHARS = 8000
_ROUNDS = 2000

# Per task and status: the run's public items, how many, and the sum of the ok scores.
_TASK_CELLS = text("""
SELECT i.axis, i.category, i.task, coalesce(s.status, 'backend_error') AS status, count(*) AS n,
       coalesce(sum(s.score) FILTER (WHERE s.status = 'ok'), 0) AS total
  FROM eval_run_items i LEFT JOIN eval_scores s ON s.fingerprint = i.score_fingerprint
 WHERE i.run_id = :run AND NOT i.held_out
 GROUP BY i.axis, i.category, i.task, coalesce(s.status, 'backend_error')
 ORDER BY i.axis, i.category, i.task
""")

_SCORERS = text("""
SELECT DISTINCT s.scorer_version FROM eval_run_items i JOIN eval_scores s ON s.fingerprint = i.score_fingerprint
 WHERE i.run_id = :run AND NOT i.held_out AND s.scorer_version <> '' ORDER BY 1 LIMIT 20
""")

# One public item per category (a scored answer first), in a fixed order that does not follow the ids'
# alphabet; then at most :limit of them. `withheld` lists (task, item id) the secret holds out soon.
_SAMPLES = text("""
SELECT * FROM (
  SELECT DISTINCT ON (i.axis, i.category)
         i.task, i.item_id, i.axis, i.category, g.messages, g.text, g.status AS answer_status,
         s.status AS score_status, s.score, s.outcome, s.extracted, s.scored_by, s.scorer_version
    FROM eval_run_items i
    JOIN eval_generations g ON g.fingerprint = i.generation_fingerprint
    LEFT JOIN eval_scores s ON s.fingerprint = i.score_fingerprint
   WHERE i.run_id = :run AND NOT i.held_out AND i.item_id NOT LIKE :private
     AND NOT EXISTS (SELECT 1 FROM eval_run_items h JOIN eval_runs r ON r.id = h.run_id
                      WHERE r.model_id = :model AND h.held_out AND h.task = i.task AND h.item_id = i.item_id)
     AND (i.task || E'\\x1f' || i.item_id) <> ALL (CAST(:withheld AS text[]))
   ORDER BY i.axis, i.category, (s.status = 'ok') DESC NULLS LAST, md5(i.task || i.item_id)
) picked ORDER BY axis, category LIMIT :limit
""")


# --- scores ---------------------------------------------------------------------------------------


async def model_scores(session: AsyncSession, model: Contestant, suite: str) -> ModelScoresOut:
    run = await repo.leaderboard_run(session, model.id, suite)
    shown = ModelScoresOut(model=model.slug, suite=suite, run=None, level=LEVEL, categories=[],
                           interval_method=f"{JEFFREYS} per task, {MEAN_OF_JEFFREYS} per category")
    if run is None:
        return shown
    cells = (await session.execute(_TASK_CELLS, {"run": run.id})).all()
    scorers = list(await session.scalars(_SCORERS, {"run": run.id}))
    # Seeded by the run, so a page shows the same interval on every visit.
    rng = libra.named_stream(run.id, f"{model.slug}/{suite}")
    return shown.model_copy(update={"run": _run_view(run, scorers), "categories": categories(cells, rng)})


def _run_view(run: EvalRun, scorers: list[str]) -> ScoredRunOut:
    return ScoredRunOut(run_id=run.id, scope=run.scope, cycle_id=run.cycle_id, finished_at=run.finished_at,
                        suite_version=run.suite_version, judge_version=run.judge_version, scorer_versions=scorers)


def categories(cells: Iterable[Any], rng: Any) -> list[CategoryScoreOut]:
    """Rows (axis, category, task, status, n, total) -> categories with their tasks, both with intervals."""
    tasks: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in cells:
        task = tasks.setdefault((row.axis, row.category), {}).setdefault(
            row.task, {"statuses": {}, "total": 0.0, "n_ok": 0})
        task["statuses"][row.status] = int(row.n)
        if row.status == "ok":
            task["n_ok"], task["total"] = int(row.n), float(row.total)
    return [_category(axis, name, members, rng) for (axis, name), members in sorted(tasks.items())]


def _category(axis: str, name: str, members: dict[str, dict[str, Any]], rng: Any) -> CategoryScoreOut:
    shown = [_task(task, cell) for task, cell in sorted(members.items())]
    band = mean_of_jeffreys([(cell["total"], cell["n_ok"]) for cell in members.values()], rng, _ROUNDS, LEVEL)
    return CategoryScoreOut(axis=axis, category=name, mean=band.value, lower=band.lower, upper=band.upper,
                            n_items=sum(t.n_items for t in shown), n_ok=sum(t.n_ok for t in shown), tasks=shown)


def _task(name: str, cell: dict[str, Any]) -> TaskScoreOut:
    band = jeffreys_interval(cell["total"], cell["n_ok"], LEVEL)
    return TaskScoreOut(task=name, mean=band.value, lower=band.lower, upper=band.upper,
                        n_items=sum(cell["statuses"].values()), n_ok=cell["n_ok"],
                        statuses=dict(sorted(cell["statuses"].items())))


# --- samples --------------------------------------------------------------------------------------

SAMPLES_NOTE = ("Public items only, one per category: held-out and private items are never shown. Answers "
                "are the model's raw text.")


async def model_samples(
    session: AsyncSession, model: Contestant, suite: str, limit: int, settings: Settings
) -> ModelSamplesOut:
    run = await repo.leaderboard_run(session, model.id, suite)
    shown = ModelSamplesOut(model=model.slug, suite=suite, run_id=None, samples=[], note=SAMPLES_NOTE)
    if run is None:
        return shown
    withheld = await asyncio.to_thread(withheld_soon, settings, suite, utcnow())
    rows = await session.execute(_SAMPLES, {
        "run": run.id, "model": model.id, "limit": min(limit, MAX_SAMPLES), "private": f"{PRIVATE_PREFIX}%",
        "withheld": sorted(f"{task}\x1f{item}" for task, item in withheld),
    })
    return shown.model_copy(update={"run_id": run.id, "samples": [_sample(row) for row in rows]})


def _cut(value: str | None, most: int) -> tuple[str | None, bool]:
    if value is None or len(value) <= most:
        return value, False
    return value[:most] + " …", True


def _sample(row: Any) -> SampleOut:
    messages, cut = [], False
    for message in row.messages or []:
        content, was_cut = _cut(str(message.get("content", "")), PROMPT_CHARS)
        messages.append(SampleMessageOut(role=str(message.get("role", "user")), content=content or ""))
        cut |= was_cut
    answer, answer_cut = _cut(row.text, ANSWER_CHARS)
    return SampleOut(
        task=row.task, item_id=row.item_id, axis=row.axis, category=row.category, prompt=messages, answer=answer,
        answer_status=_word(row.answer_status), score_status=_word(row.score_status), score=row.score,
        verdict=row.outcome, extracted=row.extracted, scored_by=row.scored_by or None,
        scorer_version=row.scorer_version, truncated=cut or answer_cut,
    )


def _word(status: Any) -> str | None:
    return None if status is None else getattr(status, "value", str(status))


def withheld_soon(settings: Settings, suite: str, now: datetime) -> frozenset[tuple[str, str]]:
    """(task, item id) the secret seed holds out in this cycle or the next; empty without a secret."""
    policy = private.HeldOutPolicy(secret=private.HeldOutPolicy.from_settings(settings).secret)
    if policy.secret is None:
        return frozenset()
    return _withheld(suite, policy, (cycle_id_at(now), cycle_id_at(now + timedelta(days=7))))


@functools.lru_cache(maxsize=4)
def _withheld(suite: str, policy: private.HeldOutPolicy, cycles: tuple[str, ...]) -> frozenset[tuple[str, str]]:
    # Pure in its arguments (the task files are fixed for a process): loading the suite takes ~0.5 s once.
    registry = default_registry()
    loaded = [task for task in (_load(registry, name) for name in registry.suite_task_names(suite)) if task]
    return frozenset((task.name, item.id) for cycle in cycles for task in private.apply(loaded, cycle, policy)
                     for item in task.items if item.held_out)


def _load(registry: Any, name: str) -> Any:
    try:
        return registry.load(name)
    except (LibraError, FileNotFoundError, KeyError):  # an optional data package missing: nothing of it ran
        return None
