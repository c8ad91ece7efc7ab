import asyncio
from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from core.db import transaction
from evaluation import service
from evaluation.jobs import queue_evaluation
from evaluation.models import RunReason
from evaluation.schemas import EvaluateIn, EvaluationOut, RefusalAgreementOut
from server.deps import AdminDep, RuntimeDep, SessionDep

router = APIRouter(tags=["evaluation"])
SuiteQuery = Annotated[str | None, Query(description="Suite (default: LIBRA_EVAL_SUITE).")]


@router.get("/models/{slug}/evaluation")
async def get_evaluation(
    slug: str, session: SessionDep, runtime: RuntimeDep, suite: SuiteQuery = None
) -> EvaluationOut:
    """The model's latest run (pending, running with progress, finished, or failed with the reason)
    and the category summary of its latest finished run. Held-out items are never shown."""
    return await service.evaluation_status(session, slug, suite or runtime.settings.eval_suite)


@router.post("/admin/models/{slug}/evaluate", status_code=status.HTTP_202_ACCEPTED)
async def evaluate(
    slug: str, runtime: RuntimeDep, key: AdminDep, body: Annotated[EvaluateIn | None, Body()] = None
) -> EvaluationOut:
    """Queue a re-evaluation (admin key); if one is already waiting for the model, that one is kept."""
    suite = (body.suite if body else None) or runtime.settings.eval_suite
    await queue_evaluation(runtime.sessions, runtime.jobs, runtime.settings, slug, suite, RunReason.admin,
                           f"key:{key.id}")
    async with transaction(runtime.sessions) as session:
        return await service.evaluation_status(session, slug, suite)


@router.get("/methodology/refusal-agreement")
async def refusal_agreement() -> RefusalAgreementOut:
    """How well the refusal rules agree with the hand-labelled gold set, per split."""
    return await asyncio.to_thread(service.refusal_agreement)
