from fastapi import APIRouter, status
from pydantic import Field

from core.keys.models import KeyScope
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn, ContestantOut, ContestantUpdate
from evaluation import status as eval_status
from evaluation.queue_position import QueuePositionOut, queue_positions
from evaluation.schemas import OwnModelOut
from server import contestants
from server.deps import AdminDep, OwnerDep, RuntimeDep, SessionDep, SubmitterDep
from server.engines import forget_model_engine

router = APIRouter(prefix="/models", tags=["models"])
review_router = APIRouter(tags=["models"])


class MyModelOut(OwnModelOut):
    queue: QueuePositionOut | None = Field(
        default=None, description="While the latest run waits for a worker: its place in the job queue.",
    )


@router.get("")
async def list_models(session: SessionDep, status: ContestantStatus | None = None) -> list[ContestantOut]:
    return [ContestantOut.model_validate(m) for m in await registry.list_all(session, status)]


@router.get("/{slug}")
async def get_model(slug: str, session: SessionDep) -> ContestantOut:
    return ContestantOut.model_validate(await registry.get_by_slug(session, slug))


@router.post("", status_code=status.HTTP_201_CREATED)
async def submit_model(entry: ContestantIn, runtime: RuntimeDep, key: SubmitterDep) -> ContestantOut:
    """Registers a model and queues its evaluation: `pending`, `evaluating` while its first run runs,
    then `evaluated` until an admin approves it (`active`: in the arena and on the leaderboard; see
    docs/security.md). Follow it at `GET /models/{slug}/evaluation` or `GET /me/models`. A submitter key may
    register only an `openai` endpoint on a public HTTPS address, its key given as `config.api_key` (stored
    encrypted, never shown); `api_key_env`, `api_key_file` and the local backends need an admin key (403)."""
    model = await contestants.submit(runtime.sessions, runtime.jobs, runtime.settings, entry, key.id,
                                     admin=key.scope == KeyScope.admin)
    return ContestantOut.model_validate(model)


@router.put("/{slug}")
async def update_model(slug: str, entry: ContestantUpdate, runtime: RuntimeDep, key: SubmitterDep) -> ContestantOut:
    """The submitting key changes its model's endpoint, key or shown fields (validated as at registration);
    the model is `pending` again and a new evaluation is queued. Another key gets 403."""
    model = await contestants.update(runtime.sessions, runtime.jobs, runtime.settings, slug, entry, key)
    return ContestantOut.model_validate(model)


@router.post("/{slug}/withdraw")
async def withdraw_model(slug: str, session: SessionDep, runtime: RuntimeDep, key: OwnerDep) -> ContestantOut:
    """The submitting key (or an admin) retires its model; another key gets 403."""
    model = await contestants.withdraw(session, slug, key)
    await forget_model_engine(runtime, model)
    return ContestantOut.model_validate(model)


@router.post("/{slug}/retire")
async def retire_model(slug: str, session: SessionDep, runtime: RuntimeDep, key: AdminDep) -> ContestantOut:
    """Takes a model out of the arena for good; its history stays, its loaded engine is closed."""
    model = await contestants.retire(session, slug, f"key:{key.id}")
    await forget_model_engine(runtime, model)
    return ContestantOut.model_validate(model)


@review_router.get("/me/models")
async def my_models(session: SessionDep, runtime: RuntimeDep, key: OwnerDep) -> list[MyModelOut]:
    """The models this key submitted, with their status and latest evaluation (errors in full), and,
    while that evaluation waits for a worker, its place in the queue (`queue.position`, 1 = next)."""
    suite = runtime.settings.eval_suite
    owned = [OwnModelOut(model=ContestantOut.model_validate(m),
                         evaluation=await eval_status.evaluation_status(session, m.slug, suite, public=True,
                                                                        viewer=key))
             for m in await registry.list_submitted_by(session, key.id)]
    waiting = [o.evaluation.latest_run.id for o in owned
               if o.evaluation.latest_run and o.evaluation.latest_run.status == "pending"]
    places = await queue_positions(session, waiting)
    return [MyModelOut(model=o.model, evaluation=o.evaluation,
                       queue=places.get(o.evaluation.latest_run.id) if o.evaluation.latest_run else None)
            for o in owned]


@review_router.post("/admin/models/{slug}/approve")
async def approve_model(slug: str, session: SessionDep, key: AdminDep) -> ContestantOut:
    """Lets an `evaluated` model into the arena and onto the leaderboard (`active`); 409 from any other status."""
    return ContestantOut.model_validate(await contestants.approve(session, slug, f"key:{key.id}"))
