"""The FastAPI application factory."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from core.errors import LibraError
from core.settings import Settings
from server.api import arena, battles, evaluations, health, leaderboard, models, pairing, review, votes
from server.api import keys as keys_api
from server.api import model_pages as model_pages_api
from server.faults import install_fault_handlers
from server.middleware import BodyLimit, RequestLimit, SecurityHeaders, SessionCookie
from server.observability import install_observability
from server.openapi import install_docs
from server.pages import install_pages
from server.runtime import Runtime, close_runtime, open_runtime
from server.workers import Workers, slots_for

log = logging.getLogger(__name__)


def _error(status: int, code: str, message: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message, "field": field}}, status_code=status)


async def _libra_error(_: Request, exc: LibraError) -> JSONResponse:
    response = _error(exc.status, exc.code, exc.message, exc.field)
    response.headers.update(exc.headers)  # e.g. Retry-After on a 429
    return response


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0]
    if first["type"] == "json_invalid":
        return _error(422, "invalid_json", f"the request body is not valid JSON ({first['msg']})", "body")
    where = ".".join(str(p) for p in first["loc"] if p != "body") or "body"
    return _error(422, "invalid_request", f"{where}: {first['msg']}", where)


async def _http_error(_: Request, exc: HTTPException) -> JSONResponse:
    return _error(exc.status_code, "http_error", str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("http.unhandled", extra={"path": request.url.path})
    return _error(500, "internal_error", "something went wrong on our side; it has been logged")


# The in-process worker of `libra serve` runs on the web host: never the GPU queue, whose jobs need a
# `libra worker --queue gpu` on a GPU machine.
IN_PROCESS_QUEUES = ("cpu", "housekeeping")


def _workers(runtime: Runtime) -> Workers:
    s = runtime.settings
    return Workers(runtime.jobs, runtime.job_context,
                   slots_for(IN_PROCESS_QUEUES, s.worker_concurrency, s.stop_timeout_s))


def _lifespan(settings: Settings, database_url: str, with_worker: bool):
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(settings, database_url)
        app.state.runtime = runtime
        app.state.workers = _workers(runtime) if with_worker else None
        worker = asyncio.create_task(app.state.workers.run()) if with_worker else None
        try:
            yield
        finally:
            if worker is not None:
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
            await close_runtime(runtime)

    return lifespan


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # The last added runs first: headers go on every answer, the 413 and CORS preflights included.
    app.add_middleware(SessionCookie, settings=settings)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    origins = [o.strip() for o in settings.cors_origins.split(",") if o.strip()]
    if origins:  # closed unless configured: without the middleware browsers refuse cross-origin reads
        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type", "If-None-Match"])
    if settings.rate_requests_per_s > 0:  # after the headers, before everything else
        app.add_middleware(RequestLimit, settings=settings)
    app.add_middleware(SecurityHeaders)


def create_app(settings: Settings, database_url: str, *, with_worker: bool = False) -> FastAPI:
    app = FastAPI(
        title="Libra Arena",
        version="0.1.0",
        description="Ranks language models on capability and safety together.",
        lifespan=_lifespan(settings, database_url, with_worker),
        docs_url=None,  # install_docs serves /docs and /redoc without a CDN
        redoc_url=None,
    )
    app.add_exception_handler(LibraError, _libra_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
    # Matched in this order: the busiest paths first (a request is tried against every route before its own;
    # the vote and battle routes came after the models' eight).
    for router in (health.router, votes.router, battles.router, models.router, arena.router, evaluations.router,
                   leaderboard.router, review.router, pairing.router, model_pages_api.router):
        app.include_router(router, prefix="/api/v1")
    app.include_router(keys_api.router, prefix="/api/v1")
    app.include_router(models.review_router, prefix="/api/v1")
    install_fault_handlers(app)  # after the generic handlers: database outages answer 503, not 500
    _add_middleware(app, settings)
    install_observability(app, settings)  # outermost: request ids and metrics see every answer
    install_docs(app)
    install_pages(app)
    return app


def create_app_from_environment() -> FastAPI:
    """The app of one API process among several (`libra serve --workers N`, or uvicorn's own `--factory`).

    uvicorn's worker processes build their app from an import path, not from objects of the parent, so
    this reads everything from the environment; the parent has migrated and seeded the database first and
    left its URL (the embedded server's too) in LIBRA_DATABASE_URL. No job worker runs in here: with several
    API processes it is a process of its own.
    """
    from core.logging import configure_logging

    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    if not settings.database_url:
        raise LibraError("LIBRA_DATABASE_URL is not set: several API processes share one database, which "
                         "`libra serve --workers N` starts and migrates first", code="bad_setting")
    return create_app(settings, settings.database_url)
