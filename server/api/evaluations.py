import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from core.db import transaction
from evaluation import status as eval_status
from evaluation.jobs import request_evaluation
from evaluation.models import RunReason
from evaluation.schemas import (
    EvaluateIn,
    EvaluateOut,
    EvaluationOut,
    MethodologyOut,
    ProgressSummaryOut,
    RefusalAgreementOut,
)
from server.deps import AdminDep, OptionalKeyDep, RuntimeDep, SessionDep

router = APIRouter(tags=["evaluation"])
SuiteQuery = Annotated[str | None, Query(
    description="Suite (default: LIBRA_EVAL_SUITE).", pattern=r"^[A-Za-z0-9_.-]{1,64}$",
)]


@router.get("/models/{slug}/evaluation")
async def get_evaluation(
    slug: str, session: SessionDep, runtime: RuntimeDep, key: OptionalKeyDep, suite: SuiteQuery = None
) -> EvaluationOut:
    """The model's latest run (pending, running with progress, finished, or failed with the reason)
    and the category summary of its latest finished run. Held-out items are never shown. The error text
    of an endpoint is shown only with the submitter's key or an admin key; others read its category."""
    return await eval_status.evaluation_status(session, slug, suite or runtime.settings.eval_suite,
                                               public=True, viewer=key)


@router.get("/evaluations/progress")
async def evaluation_progress(
    session: SessionDep, runtime: RuntimeDep, suite: SuiteQuery = None
) -> ProgressSummaryOut:
    """The evaluation work in flight: models evaluating, queued and done, the overall share, and each
    model's phase. Status words and fractions only: no item, no error text."""
    return await eval_status.progress_summary(session, suite or runtime.settings.eval_suite, runtime.settings)


@router.post("/admin/models/{slug}/evaluate", status_code=status.HTTP_202_ACCEPTED)
async def evaluate(
    slug: str, runtime: RuntimeDep, key: AdminDep, body: Annotated[EvaluateIn | None, Body()] = None
) -> EvaluateOut:
    """Queue a re-evaluation (admin key). If a run of the model and suite is already queued or running,
    of either scope, that run is returned (`already_active`) and no second one starts."""
    suite = (body.suite if body else None) or runtime.settings.eval_suite
    requested = await request_evaluation(runtime.sessions, runtime.jobs, runtime.settings, slug, suite,
                                         RunReason.admin, f"key:{key.id}",
                                         items_per_task=body.items_per_task if body else None)
    async with transaction(runtime.sessions) as session:
        shown = await eval_status.evaluation_status(session, slug, suite)
    return EvaluateOut(**shown.model_dump(), run_id=requested.run.id, already_active=requested.already_active)


@router.get("/methodology")
async def methodology(session: SessionDep, runtime: RuntimeDep) -> MethodologyOut:
    """How safety answers are judged: the rules' agreement with the gold set, each measured judge
    version's agreement, the judge rubric, the score of each verdict, and the private held-out set."""
    return await eval_status.methodology(session, runtime.settings)


@router.get("/methodology/refusal-agreement")
async def refusal_agreement() -> RefusalAgreementOut:
    """The refusal rules' agreement with the gold sets alone (also part of `GET /methodology`)."""
    return await asyncio.to_thread(eval_status.refusal_agreement)
