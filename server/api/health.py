from fastapi import APIRouter
from sqlalchemy import text

from core.errors import LibraError
from server.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep) -> dict[str, str]:
    """Readiness: the database answers."""
    try:
        async with runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure here means "not ready"; the reason goes to the log, not the caller
        raise LibraError("the database is not reachable", status=503, code="not_ready") from None
    return {"status": "ready", "database": "ok"}
