"""Postgres restarts, then stops and starts again, during a burst of votes against a real `libra serve`.

Every vote is sent until it is acknowledged (a client retrying a 503 with the same Idempotency-Key, as
the Retry-After asks); what the test counts is what the clients saw against what the database holds.
"""

import asyncio
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from benchmarks.arena import register_stub_models, server_env
from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from tests.conftest import scratch_root
from tests.faults.support import (
    API,
    Client,
    ConnectionReset,
    Site,
    restart_postgres,
    start_postgres,
    start_site,
    stop_postgres,
)
from tests.http_stub import StreamingHandler, serving
from tests.server.livesite import stop

CONNECTIONS = 8
VOTES_PER_CONNECTION = 10
DOWN_S = 1.5  # how long the database stays stopped, besides the stop and the start themselves
HANG_GUARD_S = 120


@dataclass
class Seen:
    """What the clients saw during the burst."""

    statuses: Counter = field(default_factory=Counter)
    acknowledged: list[str] = field(default_factory=list)
    resets: int = 0
    unshaped_503: list[str] = field(default_factory=list)  # a 503 without Retry-After or the error shape
    ready_while_down: list[int] = field(default_factory=list)
    ready_seconds: list[float] = field(default_factory=list)
    submit: int = 0  # the status of a model submission (which queues a job) after the outages


async def _make_battles(clients: list[Client]) -> list[list[str]]:
    async def make(client: Client) -> list[str]:
        made = []
        for _ in range(VOTES_PER_CONNECTION):
            answer = await client.request("POST", f"{API}/battles", {"prompt": "How do plants make food?"})
            assert answer.status == 201 and answer.json()["status"] == "ready", answer.body
            made.append(answer.json()["id"])
        return made

    return list(await asyncio.gather(*(make(c) for c in clients)))


async def _vote_until_acknowledged(client: Client, battles: list[str], seen: Seen) -> None:
    for battle in battles:
        while True:
            try:
                answer = await client.request("POST", f"{API}/battles/{battle}/vote",
                                              {"helpfulness": "a", "safety": "tie"}, key=f"faults-{battle}")
            except ConnectionReset:
                seen.resets += 1
                continue
            seen.statuses[answer.status] += 1
            if answer.status == 200:
                seen.acknowledged.append(battle)
                break
            if answer.status != 503:
                break  # a 409 or 429 is an answer too: recorded, not retried
            if "retry-after" not in answer.headers or answer.json()["error"]["code"] != "database_unavailable":
                seen.unshaped_503.append(answer.body.decode())
            await asyncio.sleep(0.05)  # sooner than Retry-After: more requests meet the outage
        await asyncio.sleep(0.05)  # a burst that outlasts the stop, not one over before it


async def _until_acknowledged(seen: Seen, count: int) -> None:
    while len(seen.acknowledged) < count:
        await asyncio.sleep(0.01)


async def _outages(site: Site, folder: Path, seen: Seen) -> None:
    """A quick restart once the burst is under way, then, a quarter of the votes later, a stop of
    DOWN_S with /readyz asked meanwhile."""
    await _until_acknowledged(seen, CONNECTIONS)
    await asyncio.to_thread(restart_postgres, folder)
    await _until_acknowledged(seen, 3 * CONNECTIONS)
    options = await asyncio.to_thread(stop_postgres, folder)
    probe = Client(site.port)
    try:
        for _ in range(3):
            began = time.perf_counter()
            seen.ready_while_down.append((await probe.request("GET", f"{API}/readyz")).status)
            seen.ready_seconds.append(time.perf_counter() - began)
        await asyncio.sleep(DOWN_S)
    finally:
        probe.close()
        await asyncio.to_thread(start_postgres, folder, options)


async def _burst(site: Site, folder: Path, admin: str) -> Seen:
    clients = [Client(site.port) for _ in range(CONNECTIONS)]
    seen = Seen()
    try:
        async with asyncio.timeout(HANG_GUARD_S):
            battles = await _make_battles(clients)
            await asyncio.gather(_outages(site, folder, seen),
                                 *(_vote_until_acknowledged(c, b, seen) for c, b in zip(clients, battles, strict=True)))
            after = await clients[0].request("POST", f"{API}/battles", {"prompt": "And now?"})
            assert after.status == 201, after.body  # the same process serves again: the pool recovered
            assert (await clients[0].request("GET", f"{API}/readyz")).status == 200
            # The first job queued since the restarts: the job app's own pool held broken connections.
            submission = {"slug": "after-restart", "display_name": "After", "organisation": "t",
                          "config": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}}
            seen.submit = (await clients[0].request("POST", f"{API}/models", submission, bearer=admin)).status
    finally:
        for client in clients:
            client.close()
    return seen


def _admin_key(url: str) -> str:
    async def issue() -> str:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                return (await create_key(session, "faults", KeyScope.admin, actor="test")).plaintext
        finally:
            await engine.dispose()

    return asyncio.run(issue())


def _stored_votes(url: str) -> list[str]:
    with psycopg.connect(libpq_url(url)) as conn:
        return [row[0] for row in conn.execute("SELECT battle_id::text FROM votes")]


class InstantHandler(StreamingHandler):
    """An OpenAI-style endpoint that streams a short answer at once."""

    def do_POST(self) -> None:
        self.read_body()
        self.stream(["A ", "short ", "answer."], 0.0)


def test_a_database_restart_during_a_vote_burst_loses_nothing_and_answers_503() -> None:
    with (serving(InstantHandler) as stub_url,
          tempfile.TemporaryDirectory(prefix="libra-faults-", dir=scratch_root()) as home,
          embedded_postgres(Path(home) / "pg") as url):
        upgrade(url)
        register_stub_models(url, stub_url)
        site = start_site(server_env(url, home), Path(home) / "serve.log")
        try:
            seen = asyncio.run(_burst(site, Path(home) / "pg" / "pg", _admin_key(url)))
            assert site.process.poll() is None  # recovered by itself, never restarted
        finally:
            stop(site.process)
        stored, log = _stored_votes(url), site.log_lines()
    print(f"faults: statuses={dict(seen.statuses)} resets={seen.resets} readyz_down={seen.ready_while_down} "
          f"readyz_s={[round(s, 3) for s in seen.ready_seconds]} submit={seen.submit} log_lines={len(log)}", *log, sep="\n")
    assert seen.statuses[503] > 0  # the outage really met the burst
    assert set(seen.statuses) <= {200, 409, 429, 503} and seen.resets == 0 and seen.unshaped_503 == []
    assert sorted(stored) == sorted(seen.acknowledged)  # nothing acknowledged lost, nothing stored twice
    assert len(seen.acknowledged) == CONNECTIONS * VOTES_PER_CONNECTION
    assert seen.ready_while_down == [503, 503, 503]
    assert seen.submit in (201, 503)
    assert not any("Traceback" in line or "Exception in ASGI" in line for line in log), "\n".join(log)
    outage_lines = [line for line in log if "db.unavailable" in line]
    assert 1 <= len(outage_lines) <= 6, "\n".join(log)  # one per failure kind, not one per request
    assert len(log) <= 20, "\n".join(log)
