"""/metrics on the real app and a real database: counters move by exactly what was done, routes are
labelled by template, the database gauges read the tables, access is closed to the public, and two
processes writing to one PROMETHEUS_MULTIPROC_DIR are added up.

Model text is canned (tests/doubles.py): these tests are about the counting.
"""

import asyncio
import dataclasses
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from core.db import libpq_url, transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from evaluation.jobs import queue_leaderboard_recompute
from server.app import create_app
from server.contestants import register
from server.observability import serve_worker_metrics
from server.seed import seed_defaults

Samples = dict[tuple[str, frozenset], float]
VOTE_ROUTE = "/api/v1/battles/{battle_id}/vote"
# A closed local port and a key that is never set: that side fails at once, with no network.
KEYLESS = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "LIBRA_TEST_UNSET_KEY"}


@pytest.fixture
async def seeded(runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


def parse(text: str) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    response = await http.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)


async def _scrape_app(app: object) -> Samples:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await scrape(http)


def fresh_gauges(http: httpx.AsyncClient) -> None:
    """The database gauges are kept a few seconds; a test that just changed the tables reads them anew."""
    http._transport.app.state.metric_gauges.ttl_s = 0.0  # type: ignore[attr-defined]


async def _ready(http: httpx.AsyncClient, prompt: str) -> tuple[dict, int]:
    """A new battle once its answers are in, and how many GETs waiting for them took."""
    battle, polls = (await http.post("/api/v1/battles", json={"prompt": prompt})).json(), 0
    while battle["status"] == "generating" and polls < 600:
        polls += 1
        battle = (await http.get(f"/api/v1/battles/{battle['id']}")).json()
    return battle, polls


async def test_a_battle_and_a_vote_move_the_counters_by_exactly_what_was_done(client, seeded, db_url) -> None:
    before = await scrape(client)
    battle, polls = await _ready(client, "How do plants make food?")
    assert battle["status"] == "ready", battle
    fresh_gauges(client)
    waiting = await scrape(client)  # the gauges read the database: this fresh one holds one battle to vote on
    assert value(waiting, "libra_battles", status="ready") == 1
    vote = f"/api/v1/battles/{battle['id']}/vote"
    key = {"Idempotency-Key": f"metrics-{uuid.uuid4().hex}"}
    assert (await client.post(vote, json={"helpfulness": "a"}, headers=key)).status_code == 200
    assert (await client.post(vote, json={"helpfulness": "a"}, headers=key)).status_code == 200  # a retry
    assert (await client.post(vote, json={"helpfulness": "b"})).status_code == 409
    assert (await client.get(f"/no/such/page/{uuid.uuid4()}")).status_code == 404
    fresh_gauges(client)
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "libra_http_requests_total"
    assert moved(requests, route="/api/v1/battles", method="POST", status="2xx") == 1
    assert moved(requests, route="/api/v1/battles/{battle_id}", method="GET", status="2xx") == polls
    assert moved(requests, route=VOTE_ROUTE, method="POST", status="2xx") == 2
    assert moved(requests, route=VOTE_ROUTE, method="POST", status="4xx") == 1
    assert moved(requests, route="unmatched", method="GET", status="4xx") == 1
    assert moved(requests, route="/metrics", method="GET", status="2xx") == 2  # the earlier scrapes
    assert moved("libra_http_request_duration_seconds_count", route=VOTE_ROUTE, method="POST", status="2xx") == 2
    assert moved("libra_votes_total", outcome="counted") == 1
    assert moved("libra_votes_total", outcome="replay") == 1
    assert moved("libra_votes_total", outcome="excluded") == 0
    # Labels are templates, never a raw path: no battle id and no unknown path becomes a series.
    labels = {dict(k[1]).get("route", "") for k in after}
    assert not any(battle["id"] in route or "/no/such" in route for route in labels)
    assert value(after, "libra_metrics_database_up") == 1
    assert value(after, "libra_battles", status="ready") == 0 and value(after, "libra_battles", status="generating") == 0
    assert ("libra_battles_estimated", frozenset({("status", "voted")})) not in after  # no statistics yet
    # Finished battles are the planner's estimate (exact on a table this small once ANALYZE has run; a
    # lone row has no most-common value, so a second one is voted on first).
    second, _ = await _ready(client, "And animals?")
    assert (await client.post(f"/api/v1/battles/{second['id']}/vote", json={"helpfulness": "b"})).status_code == 200
    with psycopg.connect(libpq_url(db_url), autocommit=True) as conn:
        conn.execute("ANALYZE battles")
    fresh_gauges(client)
    assert value(await scrape(client), "libra_battles_estimated", status="voted") == 2
    # Every connection went back to the pool; the pool's size is counted.
    assert value(after, "libra_db_pool_checked_out") == 0
    assert value(after, "libra_db_pool_size") >= 5


async def test_excluded_votes_and_backend_errors_are_counted(client, runtime, seeded, monkeypatch) -> None:
    monkeypatch.delenv("LIBRA_TEST_UNSET_KEY", raising=False)
    async with transaction(runtime.sessions) as session:
        entry = ContestantIn(slug="keyless-one", display_name="keyless-one", organisation="t", config=KEYLESS)
        await register(session, entry, ContestantStatus.active, actor="test")
    # Reading faster than anyone can: the reading-time rule holds each vote for review (kept, not counted).
    strict = dataclasses.replace(runtime, settings=runtime.settings.model_copy(update={"arena_read_words_per_s": 0.01}))
    app = create_app(strict.settings, "unused://")
    app.state.runtime = strict
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        before = await scrape(http)
        failed_sides, excluded = 0, 0
        for _ in range(6):
            battle, _ = await _ready(http, "hello")
            failed_sides += sum(a["status"] == "error" for a in battle["answers"])
            if battle["status"] == "ready":
                voted = await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a"})
                excluded += voted.json()["vote_counted"] is False
        after = await scrape(http)
    assert excluded > 0 and failed_sides > 0, "the draw should have made both kinds of battle"
    assert value(after, "libra_votes_total", outcome="excluded") - value(before, "libra_votes_total",
                                                                         outcome="excluded") == excluded
    kind = {"source": "arena", "kind": "backend_unavailable"}
    assert value(after, "libra_backend_errors_total", **kind) - value(before, "libra_backend_errors_total",
                                                                      **kind) == failed_sides


async def test_the_job_queue_gauges_read_procrastinate(client, runtime) -> None:
    assert await queue_leaderboard_recompute(runtime.jobs)
    fresh_gauges(client)
    samples = await scrape(client)
    assert value(samples, "libra_jobs_waiting", queue="housekeeping") == 1
    assert value(samples, "libra_jobs_waiting", queue="cpu") == 0 and ("libra_jobs_waiting", frozenset(
        {("queue", "gpu")})) in samples  # every known queue has a series, 0 included
    assert 0 <= value(samples, "libra_jobs_oldest_waiting_seconds", queue="housekeeping") < 600
    assert value(samples, "libra_jobs_running", queue="housekeeping") == 0


async def test_metrics_are_closed_to_the_public_and_keep_the_security_headers(client, runtime) -> None:
    relayed = await client.get("/metrics", headers={"X-Forwarded-For": "93.184.216.34"})
    assert relayed.status_code == 403 and relayed.json()["error"]["code"] == "forbidden"
    for peer in ("93.184.216.34", "::ffff:93.184.216.34"):  # the second: an IPv4 peer on a dual-stack socket
        public = httpx.ASGITransport(app=client._transport.app, client=(peer, 4711))
        async with httpx.AsyncClient(transport=public, base_url="http://test") as outside:
            refused = await outside.get("/metrics")
        assert refused.status_code == 403 and "LIBRA_METRICS_TOKEN" in refused.json()["error"]["message"]
    mapped = httpx.ASGITransport(app=client._transport.app, client=("::ffff:127.0.0.1", 4711))
    async with httpx.AsyncClient(transport=mapped, base_url="http://test") as local:
        assert (await local.get("/metrics")).status_code == 200
    assert "default-src 'self'" in refused.headers["content-security-policy"]
    allowed = await client.get("/metrics")
    assert allowed.status_code == 200 and allowed.headers["x-content-type-options"] == "nosniff"

    settings = runtime.settings.model_copy(update={"metrics_token": SecretStr("s3cret-token")})
    app = create_app(settings, "unused://")
    app.state.runtime = runtime
    remote = httpx.ASGITransport(app=app, client=("93.184.216.34", 4711))
    async with httpx.AsyncClient(transport=remote, base_url="http://test") as http:
        assert (await http.get("/metrics")).status_code == 401
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        assert "libra_battles" in (await http.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})).text


# Each child is one app process (no database) with the real observability layer, answering a route N
# times; it stays alive until the test has scraped, as a serving process would. The app is a small one
# on purpose: importing the whole service twice would cost seconds of CPU for nothing this test reads.
CHILD = textwrap.dedent("""
    import asyncio, sys
    import httpx
    from fastapi import FastAPI
    from core.settings import Settings
    from server.observability import install_observability

    async def main(times: int) -> None:
        app = FastAPI()
        app.add_api_route("/api/v1/healthz", lambda: {"status": "ok"})
        install_observability(app, Settings(_env_file=None))
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
            for _ in range(times):
                assert (await http.get("/api/v1/healthz")).status_code == 200
        from core import metrics
        metrics.DB_POOL_SIZE.inc(5)  # a live process's pool, as watch_pool counts it
        print("counted", flush=True)
        sys.stdin.read()

    asyncio.run(main(int(sys.argv[1])))
""")


def test_two_processes_writing_one_multiprocess_folder_are_added_up(tmp_path: Path, monkeypatch) -> None:
    shared = tmp_path / "prometheus"
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    children = [subprocess.Popen([sys.executable, "-c", CHILD, str(times)],
                                 env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                for times in (2, 3)]
    try:
        for child in children:
            assert child.stdout.readline().strip() == "counted"
        monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(shared))
        app = create_app(Settings(_env_file=None, home=tmp_path), "unused://")  # no runtime: no database gauges
        samples = asyncio.run(_scrape_app(app))
    finally:
        for child in children:
            child.communicate("", timeout=30)
    healthz = {"route": "/api/v1/healthz", "method": "GET", "status": "2xx"}
    assert value(samples, "libra_http_requests_total", **healthz) == 5
    assert value(samples, "libra_http_request_duration_seconds_count", **healthz) == 5
    assert value(samples, "libra_db_pool_size") == 10  # livesum over the two live processes
    assert value(samples, "libra_metrics_database_up") == 0
    from prometheus_client import multiprocess

    for child in children:  # what a supervisor does when a child exits: its live gauges go
        multiprocess.mark_process_dead(child.pid, str(shared))
    samples = asyncio.run(_scrape_app(app))
    assert value(samples, "libra_db_pool_size") == 0
    assert value(samples, "libra_http_requests_total", **healthz) == 5  # counters outlive their process


def test_a_worker_serves_its_metrics_on_its_own_port_behind_the_token(tmp_path: Path) -> None:
    from tests.server.livesite import free_port

    port = free_port()
    settings = Settings(_env_file=None, home=tmp_path).model_copy(update={"metrics_token": SecretStr("w-token")})
    stop = serve_worker_metrics(settings, port)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert httpx.get(url, timeout=10).status_code == 401
        answer = httpx.get(url, headers={"Authorization": "Bearer w-token"}, timeout=10)
        assert answer.status_code == 200 and "libra_jobs_total" in answer.text
    finally:
        stop()
