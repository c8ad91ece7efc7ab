"""SIGKILL of `libra serve` while battles generate against a slow backend and votes are in flight; a
new process starts at once on the same database. Nothing acknowledged is lost, and the battles the
killed process left generating are failed by the new one before it serves its first request."""

import asyncio
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path

import httpx
import psycopg

from core.db import libpq_url
from tests.faults.support import start_site
from tests.http_stub import StreamingHandler, serving
from tests.server.livesite import endpoint_site_env, register_endpoint_models, stop

READY_BATTLES = 6
GENERATING_BATTLES = 3


class SlowWhenToldHandler(StreamingHandler):
    """Streams a short answer at once, or, once `slow` is set, one word a second for two minutes."""

    slow = threading.Event()

    def do_POST(self) -> None:
        self.read_body()
        if self.slow.is_set():
            self.stream((f"w{i} " for i in range(120)), 1.0)
        else:
            self.stream(["A ", "short ", "answer."], 0.0)


def _vote(http: httpx.Client, battle: str) -> str | None:
    """The battle if its vote was acknowledged, else None."""
    answer = http.post(f"/battles/{battle}/vote", json={"helpfulness": "b"}, headers={"Idempotency-Key": f"k-{battle}"})
    return battle if answer.status_code == 200 else None


def _kill_during_battles_and_votes(env: dict[str, str], folder: Path) -> tuple[list[str], list[str]]:
    """Returns (acknowledged votes, battles generating when the process was killed)."""
    site = start_site(env, folder / "first.log")
    try:
        with httpx.Client(base_url=f"{site.base_url}/api/v1", timeout=30) as http:
            ready = [http.post("/battles", json={"prompt": "Hi?"}).json() for _ in range(READY_BATTLES)]
            assert all(b["status"] == "ready" for b in ready), ready
            acknowledged = [b["id"] for b in ready[:2] if _vote(http, b["id"])]
            SlowWhenToldHandler.slow.set()
            generating = [http.post("/battles", json={"prompt": "Count.", "stream": True}).json()
                          for _ in range(GENERATING_BATTLES)]
            assert all(b["status"] == "generating" for b in generating), generating
            with ThreadPoolExecutor(4) as pool:  # votes in flight when the process dies
                votes = [pool.submit(_vote, http, b["id"]) for b in ready[2:]]
                wait(votes, return_when=FIRST_COMPLETED)
                site.process.send_signal(signal.SIGKILL)
                site.process.wait()
            acknowledged += [f.result() for f in votes if f.exception() is None and f.result()]
    finally:
        if site.process.poll() is None:
            site.process.kill()
            site.process.wait()
    return acknowledged, [b["id"] for b in generating]


def _battles_and_votes(db_url: str) -> tuple[dict[str, str], set[str]]:
    with psycopg.connect(libpq_url(db_url)) as conn:
        battles = dict(conn.execute("SELECT id::text, status FROM battles").fetchall())
        votes = {row[0] for row in conn.execute("SELECT battle_id::text FROM votes")}
    return battles, votes


async def test_sigkill_during_battles_and_votes_then_an_immediate_restart(runtime, db_url, tmp_path) -> None:
    with serving(SlowWhenToldHandler) as base_url:
        await register_endpoint_models(runtime, base_url, ("slow-one", "slow-two"))
        env = endpoint_site_env(db_url, tmp_path, LIBRA_BATTLE_TIMEOUT_S="300")
        try:
            acknowledged, orphaned = await asyncio.to_thread(_kill_during_battles_and_votes, env, tmp_path)
            before = _battles_and_votes(db_url)[0]
            second = await asyncio.to_thread(start_site, env, tmp_path / "second.log")
            battles, votes = _battles_and_votes(db_url)  # right after start-up, before any vote or battle
            SlowWhenToldHandler.slow.clear()
            async with httpx.AsyncClient(base_url=f"{second.base_url}/api/v1", timeout=30) as http:
                again = await http.post("/battles", json={"prompt": "Still there?"})
            await asyncio.to_thread(stop, second.process)
        finally:
            SlowWhenToldHandler.slow.clear()
    assert [before[b] for b in orphaned] == ["generating"] * GENERATING_BATTLES  # the kill left them so
    assert [battles[b] for b in orphaned] == ["failed"] * GENERATING_BATTLES
    assert "generating" not in battles.values()
    assert len(acknowledged) >= 3 and set(acknowledged) <= votes  # nothing acknowledged is lost
    assert again.status_code == 201 and again.json()["status"] == "ready"
    assert any("arena.orphans.failed" in line and f"battles={GENERATING_BATTLES}" in line
               for line in second.log_lines()), second.log_lines()
