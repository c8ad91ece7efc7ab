"""What a vote costs the server's process apart from HTTP: votes cast one at a time against 16 at a time.

The vote path (`arena.votes`) sends a batch of votes in three round trips whatever its size (group
commit, `core.batching`), so part of a vote's cost is paid once per batch and part once per vote. This
measures both in-process, with no HTTP and no framework: battles are made through a real `libra serve`
(instant stub endpoints, embedded Postgres, each battle by a visitor of its own as in `benchmarks.arena`),
the server is stopped, and this process votes on them through `arena.votes.record_vote`, in rounds that
alternate between one caller (every batch holds one vote) and 16 concurrent callers (batches of up to 16).
From the two CPU costs per vote it derives the cost of a batch and of a vote within one:
alone = batch + vote, together = batch / size + vote.

    python -m benchmarks.vote_batches [--quick]

Prints one JSON object last: {"figures", "baseline", "targets"}. The target is the project's own (no
issue names one): 16 callers' votes cost at most half the CPU of lone votes, the point of group commit.
"""

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psutil

from arena import votes
from arena.integrity import identify, voter_salt
from arena.schemas import VoteIn
from benchmarks.arena import (
    API,
    CONCURRENCY,
    STUB_MODELS,
    Connection,
    free_port,
    own_cpu_s,
    register_stub_models,
    server_env,
    start_server,
    stop,
    stubs_running,
    tree_cpu_s,
    visitor_address,
)
from core.db import create_engine, create_sessionmaker
from core.migrate import upgrade
from core.pg_reaper import postmaster_pid
from core.pgserver import embedded_postgres
from core.settings import Settings

Ballot = tuple[uuid.UUID, str, str]  # a battle, its visitor's session id and address


async def _battles(port: int, count: int) -> list[Ballot]:
    """`count` ready battles, each by a new visitor (its own session cookie and /24 address)."""
    connections = [Connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    made: list[Ballot] = []

    async def visitor(slot: int, http: Connection) -> None:
        for n in range(slot, count, CONCURRENCY):
            http.cookie, http.forwarded_for = b"", visitor_address(n)
            code, body = await http.request("POST", f"{API}/battles", {"prompt": "How do plants make food?"})
            battle = json.loads(body) if code == 201 else {}
            if battle.get("status") == "ready":  # the cookie is "Cookie: libra_session=<id>.<signature>\r\n"
                session = http.cookie.split(b"=", 1)[1].split(b".", 1)[0].decode()
                made.append((uuid.UUID(battle["id"]), session, visitor_address(n)))

    try:
        await asyncio.gather(*(visitor(slot, http) for slot, http in enumerate(connections)))
    finally:
        for http in connections:
            http.close()
    return made


async def _vote(url: str, home: str, ballots: list[Ballot], rounds: int) -> list[dict[str, Any]]:
    """Votes on every battle, round by round, alternating 1 and CONCURRENCY callers; CPU per vote of this
    process and of Postgres, and votes per second, for each round."""
    os.environ.update(server_env(url, home, visitors=True))  # the server's settings (its salt, its limits)
    settings = Settings()
    engine = create_engine(url)
    sessions, salt = create_sessionmaker(engine), voter_salt(settings)
    postgres = psutil.Process(postmaster_pid(Path(home) / "pg" / "pg"))
    verdict = VoteIn(helpfulness="a", safety="b")
    found = []
    try:
        per_round = len(ballots) // rounds
        for r in range(rounds):
            callers = 1 if r % 2 == 0 else CONCURRENCY
            left = [(battle, identify(salt, session, address))
                    for battle, session, address in ballots[r * per_round:(r + 1) * per_round]]

            async def caller(left: list) -> None:
                while left:
                    battle, voter = left.pop()
                    await votes.record_vote(sessions, battle, verdict, voter, key=f"bench-{battle}", settings=settings)

            began, cpu, pg = time.perf_counter(), own_cpu_s(), tree_cpu_s(postgres)
            await asyncio.gather(*(caller(left) for _ in range(callers)))
            wall = time.perf_counter() - began
            found.append({"callers": callers, "cpu_ms_per_vote": (own_cpu_s() - cpu) / per_round * 1000,
                          "postgres_cpu_ms_per_vote": (tree_cpu_s(postgres) - pg) / per_round * 1000,
                          "votes_per_s": per_round / wall})
    finally:
        await engine.dispose()
    return found


def measure(quick: bool) -> dict[str, Any]:
    battles, rounds = (1_600, 8) if quick else (6_400, 16)
    with stubs_running(STUB_MODELS) as stub_urls, \
            tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp") as home, \
            embedded_postgres(Path(home) / "pg") as url:
        upgrade(url)
        register_stub_models(url, stub_urls)
        port = free_port()
        server = start_server(server_env(url, home, visitors=True), port)
        try:
            ballots = asyncio.run(_battles(port, battles))
        finally:
            stop(server)
        found = asyncio.run(_vote(url, home, ballots, rounds))
    return report(found[2:], len(ballots))  # the first two rounds warm up (plans, connections)


def report(found: list[dict[str, Any]], cast: int) -> dict[str, Any]:
    def median(callers: int, key: str) -> float:
        return round(statistics.median(r[key] for r in found if r["callers"] == callers), 4)

    def side(callers: int) -> dict[str, float]:
        return {key: median(callers, key) for key in ("cpu_ms_per_vote", "postgres_cpu_ms_per_vote", "votes_per_s")}

    alone, together = side(1), side(CONCURRENCY)
    # alone = batch + vote; together = batch / CONCURRENCY + vote (batches of CONCURRENCY at most, so the
    # batch's share is an upper bound when some batches were smaller)
    batch = (alone["cpu_ms_per_vote"] - together["cpu_ms_per_vote"]) * CONCURRENCY / (CONCURRENCY - 1)
    ratio = round(together["cpu_ms_per_vote"] / alone["cpu_ms_per_vote"], 3)
    return {
        "figures": {"together": together, "callers": CONCURRENCY,
                    "cpu_ms_per_batch": round(batch, 4),
                    "cpu_ms_per_vote_in_a_batch": round(alone["cpu_ms_per_vote"] - batch, 4),
                    "votes": cast, "rounds": len(found),
                    "note": "record_vote called in-process (no HTTP, no framework); CPU of this process and of "
                            "Postgres; medians of alternating rounds after two warm-up rounds"},
        "baseline": {"alone": alone, "note": "the same votes cast one at a time: every batch holds one vote"},
        "targets": {"together_over_alone_cpu_per_vote": {"value": ratio, "goal": "<= 0.5 (the project's own)",
                                                         "met": ratio <= 0.5}},
    }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:])))
