from fastapi import APIRouter, Request, Response, status
from procrastinate.exceptions import AlreadyEnqueued

from server.deps import AdminDep, RuntimeDep, SessionDep
from server.leaderboard import repository
from server.leaderboard.schemas import LeaderboardOut

router = APIRouter(tags=["leaderboard"])


@router.get("/leaderboard", response_model=LeaderboardOut, responses={304: {"description": "Not modified"}})
async def leaderboard(request: Request, response: Response, session: SessionDep) -> LeaderboardOut | Response:
    """The latest snapshot (only read here; the snapshot job computes it). Supports If-None-Match."""
    snapshot = await repository.latest(session)
    if snapshot is None:
        return LeaderboardOut(version=None, created_at=None, trigger=None, models=[], config={})
    etag = f'"{snapshot.etag}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": etag})
    response.headers["ETag"] = etag
    response.headers["Cache-Control"] = "no-cache"
    return LeaderboardOut(version=snapshot.id, created_at=snapshot.created_at, trigger=snapshot.trigger,
                          models=snapshot.payload["models"], config=snapshot.config)


@router.post("/admin/leaderboard/recompute", status_code=status.HTTP_202_ACCEPTED)
async def recompute(runtime: RuntimeDep, key: AdminDep) -> dict[str, object]:
    """Queue a snapshot now instead of waiting for the schedule."""
    try:
        job_id = await runtime.jobs.configure_task("ranking:snapshot", queueing_lock="ranking:snapshot") \
            .defer_async(trigger="manual")
    except AlreadyEnqueued:
        return {"queued": False, "reason": "a snapshot is already queued"}
    return {"queued": True, "job_id": job_id}
