"""Request ids on the real app and a real job worker: a sane X-Request-ID is kept and a bad one replaced,
every answer (a 500 included) carries it, and the JSON log lines of the request and of the job it
queued, written by the service's own log configuration, carry the same id; the job's start line
names the host and pid that claimed it."""

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
from pathlib import Path

import httpx
import psycopg

from core.db import libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.logging import configure_logging
from core.settings import Settings
from evaluation.jobs import queue_leaderboard_recompute
from server.app import create_app
from server.workers import Workers, slots_for

FRESH = re.compile(r"[0-9a-f]{32}")


SENT = [
    ("checkout-7f3a.retry:2_B", True),
    ("x" * 128, True),
    ("x" * 129, False),  # too long
    ("two words", False),
    ("semi;colon", False),
    ("", False),
]


async def test_a_sane_request_id_is_kept_any_other_replaced_and_every_answer_has_one(client) -> None:
    for sent, kept in SENT:
        answer = await client.get("/api/v1/healthz", headers={"X-Request-ID": sent})
        assert answer.status_code == 200
        given = answer.headers["x-request-id"]
        assert given == sent if kept else FRESH.fullmatch(given), (sent, given)
    ids = set()  # an id of its own for each answer, errors included
    for method, path, status in (("GET", "/api/v1/healthz", 200), ("GET", "/nowhere", 404),
                                 ("POST", "/api/v1/battles", 422), ("GET", "/api/v1/healthz", 200)):
        answer = await client.request(method, path, json={} if method == "POST" else None)
        assert answer.status_code == status
        assert FRESH.fullmatch(answer.headers["x-request-id"])
        assert "default-src 'self'" in answer.headers["content-security-policy"]  # the other layers still run
        ids.add(answer.headers["x-request-id"])
    assert len(ids) == 4
    # Non-ASCII bytes are not a sane id either.
    odd = await client.get("/api/v1/healthz", headers=[(b"x-request-id", "caf\u00e9".encode("latin-1"))])
    assert FRESH.fullmatch(odd.headers["x-request-id"])


async def test_a_crash_answers_500_with_the_id_and_logs_it(tmp_path: Path, capsys) -> None:
    async def crash() -> None:
        raise RuntimeError("a bug")

    app = create_app(Settings(_env_file=None, home=tmp_path), "unused://")  # this route needs no database
    app.add_api_route("/crash-for-tests", crash)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    with service_logging():
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.get("/crash-for-tests", headers={"X-Request-ID": "crash-1"})
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal_error"
    assert answer.headers["x-request-id"] == "crash-1"
    unhandled = [line for line in _json_lines(capsys) if line["event"] == "http.unhandled"]
    assert [line.get("request_id") for line in unhandled] == ["crash-1"]


def _json_lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]


@contextlib.contextmanager
def service_logging():
    """The service's own JSON log configuration (as `libra serve` sets it up), undone afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("DEBUG", as_json=True)
    try:
        yield
    finally:
        root.handlers[:], root.level = handlers, level


def _job(db_url: str, job_id: int) -> tuple[str, dict]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT status, args FROM procrastinate_jobs WHERE id = %s", (job_id,)).fetchone()


async def _run_until_done(runtime, db_url: str, job_ids: list[int]) -> None:
    workers = Workers(runtime.jobs, runtime.job_context, slots_for(("housekeeping",), 1, stop_timeout_s=4))
    task = asyncio.create_task(workers.run())
    try:
        for _ in range(600):  # a hang guard, not a timing
            if all(_job(db_url, job_id)[0] in ("succeeded", "failed") for job_id in job_ids):
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"jobs {job_ids} not done: {[_job(db_url, j) for j in job_ids]}")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_the_id_reaches_the_json_lines_of_the_request_and_of_the_job_it_queued(
        client, runtime, db_url, capsys) -> None:
    async with transaction(runtime.sessions) as session:
        admin = await create_key(session, "ops", KeyScope.admin, actor="test")
    with service_logging():
        queued = await client.post("/api/v1/admin/leaderboard/recompute", headers={
            "Authorization": f"Bearer {admin.plaintext}", "X-Request-ID": "recompute-42"})
        assert queued.status_code == 202 and queued.json()["queued"] is True, queued.text
        job_id = queued.json()["job_id"]
        await _run_until_done(runtime, db_url, [job_id])
        # A job queued by no request (here, as a periodic or worker-side deferral would) carries no id.
        assert await queue_leaderboard_recompute(runtime.jobs)
        with psycopg.connect(libpq_url(db_url)) as conn:
            plain_id = conn.execute("SELECT max(id) FROM procrastinate_jobs").fetchone()[0]
        await _run_until_done(runtime, db_url, [plain_id])
    lines = _json_lines(capsys)

    status, args = _job(db_url, job_id)
    assert status == "succeeded" and args["_request_id"] == "recompute-42"  # the task never saw it
    assert "_request_id" not in _job(db_url, plain_id)[1] and _job(db_url, plain_id)[0] == "succeeded"
    ours = [line for line in lines if line.get("request_id") == "recompute-42"]
    events = [line["event"] for line in ours]
    assert "http.request" in events, events  # the request's own line
    started = next(line for line in ours if line["event"] == "jobs.job.started")
    assert (started["job"], started["task"], started["queue"]) == (job_id, "ranking:snapshot", "housekeeping")
    assert (started["host"], started["pid"]) == (socket.gethostname(), os.getpid())
    assert "leaderboard.snapshot.stored" in events  # a line the job itself logs
    assert next(line for line in ours if line["event"] == "jobs.job.finished")["outcome"] == "succeeded"
    plain = [line for line in lines if line.get("event") == "jobs.job.started" and line["job"] == plain_id]
    assert len(plain) == 1 and "request_id" not in plain[0]
