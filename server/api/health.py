import asyncio

from fastapi import APIRouter, Request
from sqlalchemy import text

from core.errors import LibraError
from server.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(runtime: RuntimeDep, request: Request) -> dict[str, str]:
    """Readiness: the database answers within a second, and the in-process job worker (if any) runs."""
    try:
        async with asyncio.timeout(1.0), runtime.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception:  # any failure here means "not ready"; the reason goes to the log, not the caller
        raise LibraError("the database is not reachable", status=503, code="not_ready") from None
    workers = getattr(request.app.state, "workers", None)
    if workers is not None and not workers.all_running:
        stopped = [name for name, state in workers.states.items() if not state.running]
        raise LibraError(f"the job worker is not running ({', '.join(stopped)}); it restarts by itself",
                         status=503, code="not_ready")
    return {"status": "ready", "database": "ok", "worker": "running" if workers else "none"}
