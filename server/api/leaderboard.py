from fastapi import APIRouter, Request, Response, status
from procrastinate.exceptions import AlreadyEnqueued

from server.deps import AdminDep, RuntimeDep
from server.leaderboard.cache import etag_matches
from server.leaderboard.schemas import LeaderboardOut

router = APIRouter(tags=["leaderboard"])


# response_model documents the shape in OpenAPI; the bytes were rendered from it once per version (cache.py).
# No dependency and no declared header: on this path FastAPI's dependency solving (and a plain `def`
# dependency's hop to its thread pool) cost more than the cached answer itself.
@router.get("/leaderboard", response_model=LeaderboardOut, responses={
    304: {"description": "Not modified: the version named by If-None-Match is still the latest"},
    503: {"description": "The database cannot be read and nothing is cached yet"}})
async def leaderboard(request: Request) -> Response:
    """The latest snapshot (only read here; the snapshot job computes it). Supports If-None-Match.

    A new snapshot is served within about a second by every API process (docs/frontend.md)."""
    rendered = await request.app.state.runtime.leaderboard.current()
    headers = {"Cache-Control": "no-cache"}
    if rendered.etag is not None:
        headers["ETag"] = rendered.etag
    if etag_matches(request.headers.get("if-none-match"), rendered.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(rendered.body, media_type="application/json", headers=headers)


@router.post("/admin/leaderboard/recompute", status_code=status.HTTP_202_ACCEPTED)
async def recompute(runtime: RuntimeDep, key: AdminDep) -> dict[str, object]:
    """Queue a snapshot now instead of waiting for the schedule."""
    try:
        job_id = await runtime.jobs.configure_task("ranking:snapshot", queueing_lock="ranking:snapshot") \
            .defer_async(trigger="manual")
    except AlreadyEnqueued:
        return {"queued": False, "reason": "a snapshot is already queued"}
    return {"queued": True, "job_id": job_id}
