"""FastAPI dependencies: the runtime, a session for reads, and the caller's API key."""

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Header, Request
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


def _bearer(authorization: str | None) -> str | None:
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


async def get_key(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> ApiKey:
    return await authenticate(session, _bearer(authorization))


async def submitter_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    require_scope(key, KeyScope.submitter, KeyScope.admin)
    return key


async def admin_key(key: Annotated[ApiKey, Depends(get_key)]) -> ApiKey:
    require_scope(key, KeyScope.admin)
    return key


SubmitterDep = Annotated[ApiKey, Depends(submitter_key)]
AdminDep = Annotated[ApiKey, Depends(admin_key)]
