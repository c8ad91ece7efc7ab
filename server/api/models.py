from fastapi import APIRouter, status

from core.keys.models import KeyScope
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn, ContestantOut
from server import contestants
from server.deps import AdminDep, RuntimeDep, SessionDep, SubmitterDep
from server.engines import forget_model_engine

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
async def list_models(session: SessionDep, status: ContestantStatus | None = None) -> list[ContestantOut]:
    return [ContestantOut.model_validate(m) for m in await registry.list_all(session, status)]


@router.get("/{slug}")
async def get_model(slug: str, session: SessionDep) -> ContestantOut:
    return ContestantOut.model_validate(await registry.get_by_slug(session, slug))


@router.post("", status_code=status.HTTP_201_CREATED)
async def submit_model(entry: ContestantIn, runtime: RuntimeDep, key: SubmitterDep) -> ContestantOut:
    """Registers a model and queues its evaluation; it stays `pending` until that finishes
    (follow it at `GET /models/{slug}/evaluation`). A submitter key may register only an `openai`
    endpoint on a public HTTPS address, its key given as `config.api_key` (stored encrypted, never shown);
    `api_key_env`, `api_key_file` and the local backends need an admin key (403). See docs/security.md."""
    model = await contestants.submit(runtime.sessions, runtime.jobs, runtime.settings, entry, key.id,
                                     admin=key.scope == KeyScope.admin)
    return ContestantOut.model_validate(model)


@router.post("/{slug}/retire")
async def retire_model(slug: str, session: SessionDep, runtime: RuntimeDep, key: AdminDep) -> ContestantOut:
    """Takes a model out of the arena for good; its history stays, its loaded engine is closed."""
    model = await contestants.retire(session, slug, f"key:{key.id}")
    await forget_model_engine(runtime, model)
    return ContestantOut.model_validate(model)
