"""The model page's reads: scores per category and task with intervals, the arena record, the history
across snapshots and sample answers. Public, read-only, bounded; held-out items never appear.

Four small endpoints rather than one bundle: each part of the page loads, fails and is tested on its
own, and the costly one (samples, which may load the suite once to know the secret's held-out items)
never delays the others.
"""

from typing import Annotated

from fastapi import APIRouter, Path, Query

from arena.record import arena_record
from arena.record_schemas import ArenaRecordOut
from core.registry import repository as registry
from evaluation.model_page import MAX_SAMPLES, model_samples, model_scores
from evaluation.schemas import ModelSamplesOut, ModelScoresOut
from evaluation.service import check_suite
from server.deps import RuntimeDep, SessionDep
from server.leaderboard.history import MAX_POINTS, ModelHistoryOut, model_history

router = APIRouter(tags=["model pages"])

# Looser than a new submission's pattern: models registered from the command line keep their names.
SlugPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="The model's slug.")]
SuiteQuery = Annotated[str | None, Query(
    description="Suite (default: LIBRA_EVAL_SUITE).", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
)]


@router.get("/models/{slug}/scores")
async def scores(slug: SlugPath, session: SessionDep, runtime: RuntimeDep, suite: SuiteQuery = None) -> ModelScoresOut:
    """Per category and per task: the mean over `ok` public items with a 95% interval (Jeffreys), item
    counts by status, and the run, suite, scorer and judge versions behind them. Held-out items are
    never counted here."""
    suite = suite or runtime.settings.eval_suite
    check_suite(suite)
    return await model_scores(session, await registry.get_by_slug(session, slug), suite)


@router.get("/models/{slug}/arena")
async def arena(slug: SlugPath, session: SessionDep) -> ArenaRecordOut:
    """Counted votes per axis against each opponent and per prompt source, with Wilson win-rate intervals."""
    return await arena_record(session, await registry.get_by_slug(session, slug))


@router.get("/models/{slug}/history")
async def history(
    slug: SlugPath, session: SessionDep, limit: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 50,
) -> ModelHistoryOut:
    """The model's row in each of the latest `limit` snapshots that list it, oldest first."""
    model = await registry.get_by_slug(session, slug)
    return await model_history(session, model.slug, limit)


@router.get("/models/{slug}/samples")
async def samples(
    slug: SlugPath, session: SessionDep, runtime: RuntimeDep,
    limit: Annotated[int, Query(ge=1, le=MAX_SAMPLES)] = 6, suite: SuiteQuery = None,
) -> ModelSamplesOut:
    """A few public items (one per category) with the prompt, the model's raw answer and its verdict.
    Never a held-out or private item, nor one the secret seed holds out this cycle or the next."""
    suite = suite or runtime.settings.eval_suite
    check_suite(suite)
    model = await registry.get_by_slug(session, slug)
    return await model_samples(session, model, suite, limit, runtime.settings)
