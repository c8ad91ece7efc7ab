"""FastAPI dependencies: the runtime, a session for reads, and the caller's API key."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import transaction
from core.keys.models import ApiKey, KeyScope
from core.keys.service import authenticate, require_scope
from server.runtime import Runtime


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One request, one transaction: committed when the handler returns, rolled back if it raises."""
    async with transaction(runtime.sessions) as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


# Declared as an HTTP bearer scheme so that the OpenAPI document (and Swagger's Authorize button) knows
# about keys; auto_error=False leaves a missing or malformed header to `authenticate`, our one 401.
_bearer = HTTPBearer(
    scheme_name="apiKey", bearerFormat="libra_<prefix>_<secret>", auto_error=False,
    description="An API key: `Authorization: Bearer libra_...`",
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_key(session: SessionDep, bearer: BearerDep) -> ApiKey:
    return await authenticate(session, bearer.credentials if bearer else None)


async def submitter_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    require_scope(key, KeyScope.submitter, KeyScope.admin)
    return key


async def admin_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    require_scope(key, KeyScope.admin)
    return key


SubmitterDep = Annotated[ApiKey, Depends(submitter_key)]
AdminDep = Annotated[ApiKey, Depends(admin_key)]
