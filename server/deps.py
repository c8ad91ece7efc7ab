"""FastAPI dependencies: the runtime, a session for reads, and the caller's API key."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import transaction
from core.keys.models import ApiKey, KeyScope
from core.keys.service import authenticate, record_use, require_scope
from server.limits import check_submission_quota
from server.runtime import Runtime


async def get_runtime(request: Request) -> Runtime:
    # async although it awaits nothing: FastAPI runs a plain `def` dependency on a worker thread, a
    # thread hop per request for a dictionary lookup.
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns, rolled back if it raises."""
    async with transaction(runtime.sessions) as session:
        yield session


# scope="function": the commit runs when the handler returns, *before* the response is sent. FastAPI's
# default for yield dependencies (since 0.118) runs it after the response, so a client could read
# its own write back too early, and a failed commit would follow a 200 (tests/server/test_commit_timing.py).
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


# Declared as an HTTP bearer scheme so that the OpenAPI document (and Swagger's Authorize button) knows
# about keys; auto_error=False leaves a missing or malformed header to `authenticate`, our one 401.
_bearer = HTTPBearer(
    scheme_name="apiKey", bearerFormat="libra_<prefix>_<secret>", auto_error=False,
    description="An API key: `Authorization: Bearer libra_...`",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_key(request: Request, runtime: RuntimeDep, session: SessionDep, bearer: BearerDep) -> ApiKey:
    key = await authenticate(session, bearer.credentials if bearer else None)
    # Its own transaction, committed now: the use of an admin key is audited even if the action fails.
    async with transaction(runtime.sessions) as own:
        await record_use(own, key, request.method, request.url.path.replace("\x00", "\\x00"))
    return key


async def submitter_key(key: Annotated[ApiKey, Depends(get_key)], runtime: RuntimeDep,
                        session: SessionDep) -> ApiKey:
    """What submitting a model takes: the scope, and room in the key's quotas (429 otherwise)."""
    require_scope(key, KeyScope.submitter, KeyScope.admin)
    await check_submission_quota(session, runtime.settings, key)
    return key


async def owner_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    """Reading or withdrawing one's own models: the scope only, no quota."""
    require_scope(key, KeyScope.submitter, KeyScope.admin)
    return key


async def admin_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    require_scope(key, KeyScope.admin)
    return key


SubmitterDep = Annotated[ApiKey, Depends(submitter_key)]
OwnerDep = Annotated[ApiKey, Depends(owner_key)]
AdminDep = Annotated[ApiKey, Depends(admin_key)]


async def optional_key(session: SessionDep, bearer: BearerDep) -> ApiKey | None:
    """The caller's key when one is sent (then it must be valid: 401 otherwise), else None: a public visitor."""
    return await authenticate(session, bearer.credentials) if bearer else None


OptionalKeyDep = Annotated[ApiKey | None, Depends(optional_key)]
