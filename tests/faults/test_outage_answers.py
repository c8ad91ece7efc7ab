"""How the outage middleware answers, route by route, with the errors a lost database really raises
(psycopg's, and SQLAlchemy's wrapper of them); which errors those are was found by stopping Postgres
under load (test_database_restart.py). Here the routes raise them on cue, to reach the cases a burst
reaches only by chance: an outage in the middle of a streamed answer, and an error that is no outage."""

import logging
from collections.abc import AsyncIterator

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from sqlalchemy import exc as sa_exc

from core.db import outage_kind
from server.faults import RETRY_AFTER_S, install_fault_handlers

LOST = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")


def _app() -> FastAPI:
    app = FastAPI()

    @app.get("/lost")
    async def lost() -> None:
        raise sa_exc.OperationalError("SELECT 1", {}, LOST)

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def events() -> AsyncIterator[bytes]:
            yield b"event: delta\ndata: {}\n\n"
            raise LOST

        return StreamingResponse(events(), media_type="text/event-stream")

    @app.get("/bug")
    async def bug() -> None:
        raise sa_exc.IntegrityError("INSERT", {}, psycopg.errors.UniqueViolation("duplicate key"))

    async def unexpected(_, __) -> JSONResponse:  # the app's generic handler: a 500
        return JSONResponse({"error": {"code": "internal_error"}}, status_code=500)

    app.add_exception_handler(Exception, unexpected)
    install_fault_handlers(app)
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


async def test_a_lost_database_is_a_503_with_retry_after_in_the_error_shape(http) -> None:
    answer = await http.get("/lost")
    assert answer.status_code == 503 and answer.headers["retry-after"] == str(RETRY_AFTER_S)
    error = answer.json()["error"]
    assert error["code"] == "database_unavailable" and error["field"] is None and error["message"]


async def test_a_stream_that_loses_the_database_ends_cleanly_after_what_it_sent(http) -> None:
    answer = await http.get("/stream")
    assert answer.status_code == 200 and answer.content == b"event: delta\ndata: {}\n\n"


async def test_other_database_errors_stay_500s(http) -> None:
    assert (await http.get("/bug")).status_code == 500


async def test_one_log_line_per_kind_per_interval(http, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="server.faults"):
        for _ in range(5):
            await http.get("/lost")
        await http.get("/stream")
    lines = [r for r in caplog.records if r.getMessage() == "db.unavailable"]
    assert [(r.kind, r.midstream) for r in lines] == [("OperationalError", False)]  # the stream's: same kind


def test_outage_kinds_are_found_through_wrappers_and_groups() -> None:
    assert outage_kind(ExceptionGroup("both", [ValueError("x"), LOST])) == "OperationalError"
    shutting_down = psycopg.errors.AdminShutdown("terminating connection due to administrator command")
    wrapped = RuntimeError("job not queued")
    wrapped.__cause__ = shutting_down
    assert outage_kind(wrapped) == "AdminShutdown 57P01"
    assert outage_kind(psycopg.errors.UniqueViolation("duplicate")) is None
    assert outage_kind(ValueError("not a database")) is None
