"""Load benchmark (issue 13, item 7): a mixed arena workload at rising concurrency, against a real
`libra serve --no-worker` on an embedded Postgres with instant stub backends.

Run from the repository root: `python -m benchmarks.load [--quick] [--workers N]`. The last line of
stdout is one JSON object with the figures per level and `targets` (each `value`, `goal`, `met`).

Each client is one keep-alive connection (one visitor: its own session cookie) that loops over a mix
drawn from a seeded generator:

- 50 % **leaderboard reads** (`GET /api/v1/leaderboard`, the public page's data),
- 30 % **battles**: `POST /api/v1/battles {"stream": true}`, then `GET .../stream` read to its end
  (timed together: what a visitor waits for both answers),
- 20 % **votes** on one of the client's own answered battles (with an Idempotency-Key), so about two in
  three battles get a vote; a client with no battle to vote on starts a battle instead.

Concurrency rises level by level (1, 4, 16, 32, 64 clients), each level with fresh clients. A level
is *held* when every kind was measured and its p99 is under 500 ms, with no error; the report gives
the highest level held, and audits the votes: every acknowledged vote stored once, nothing stored
that was not acknowledged. The stubs answer at once (benchmarks/arena.py), so what is timed is the
service and Postgres, not a model; the load client runs on the same machine and competes with the
server for CPU. Leaderboard reads serve one snapshot taken before the levels (no worker runs to take
new ones). A level ends when its time is up and its calls in flight have finished, so a slow level
runs longer than its nominal seconds (its `seconds` says how long).

Each level also gives the CPU time per step of the service's processes and of Postgres (`/proc`
through psutil): on a shared machine requests per second say how much CPU was left to the service,
CPU time per step says what the work costs. docs/capacity.md sizes a deployment from it.

`storage` gives what the levels (and `--storage N` more battles, each voted on) added to Postgres:
rows and bytes (`pg_total_relation_size`: heap, indexes, TOAST) per battle and per vote. The stubs'
answers are 15 characters, so real answers add their own length on top (docs/capacity.md).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg

from benchmarks.arena import (
    API,
    Connection,
    Ledger,
    audit,
    free_port,
    load,
    register_stub_models,
    server_env,
    start_server,
    start_stub,
    stop,
)
from core.db import libpq_url
from core.migrate import upgrade
from core.pg_reaper import postmaster_pid
from core.pgserver import embedded_postgres

LEVELS = (1, 4, 16, 32, 64)
MIX = {"leaderboard": 0.5, "battle": 0.3, "vote": 0.2}
P99_GOAL_MS = 500.0
VERDICTS = ("a", "b", "tie", "both_bad")


@dataclass(frozen=True)
class Plan:
    levels: tuple[int, ...]
    level_s: float


def plan(quick: bool) -> Plan:
    return Plan(levels=LEVELS, level_s=3.0) if quick else Plan(levels=LEVELS, level_s=15.0)


class StreamingConnection(Connection):
    """The benchmark's raw connection, plus reading a chunked SSE response to its end."""

    async def read_stream(self, path: str) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.cookie + b"\r\n")
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split()[1])
        headers = {n.strip().lower(): v.strip() for n, _, v in (line.partition(b":") for line in lines[1:])}
        if headers.get(b"transfer-encoding") != b"chunked":  # an error answer: a plain JSON body
            return status, await self.reader.readexactly(int(headers.get(b"content-length", b"0")))
        body = bytearray()
        while size := int((await self.reader.readuntil(b"\r\n")).strip(), 16):
            body += (await self.reader.readexactly(size + 2))[:-2]
        await self.reader.readuntil(b"\r\n")  # the empty chunk's own line end
        return status, bytes(body)


@dataclass
class Kind:
    latencies_s: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)  # why, e.g. "503" or "stream 200 without done"

    @property
    def errors(self) -> int:
        return sum(self.failures.values())

    def failed(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    def figures(self) -> dict[str, Any]:
        out = {"n": len(self.latencies_s), "errors": self.errors, "failures": self.failures}
        if not self.latencies_s:  # null, not NaN: the last line stays strict JSON
            return {**out, "p50_ms": None, "p99_ms": None}
        lat = np.array(self.latencies_s) * 1000
        return {**out, "p50_ms": round(float(np.percentile(lat, 50)), 1),
                "p99_ms": round(float(np.percentile(lat, 99)), 1)}


class Mix:
    """One level's clients: what each does next, what each may vote on, and the timings by kind."""

    def __init__(self, connections: list[StreamingConnection], ledger: Ledger, rng: np.random.Generator) -> None:
        self.connections, self.ledger, self.rng = connections, ledger, rng
        self.unvoted: dict[int, list[str]] = {i: [] for i in range(len(connections))}
        self.kinds = {kind: Kind() for kind in MIX}
        self.choices = rng.choice(list(MIX), size=1_000_000, p=list(MIX.values()))  # drawn before the clock

    async def call(self, http: Connection, index: int) -> bool:
        slot = self.connections.index(http)
        kind = str(self.choices[index % len(self.choices)])
        if kind == "vote" and not self.unvoted[slot]:
            kind = "battle"
        began, record = time.perf_counter(), self.kinds[kind]
        try:
            failure = await getattr(self, kind)(http, slot)
        except asyncio.CancelledError:  # the load loop's time limit for one call
            record.failed("timeout")
            raise
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:  # a dropped or garbled answer
            http.close()
            failure = type(exc).__name__
        if failure is None:
            record.latencies_s.append(time.perf_counter() - began)
        else:
            record.failed(failure)
        return failure is None

    # Each kind answers None when it went well, else why it did not.

    async def leaderboard(self, http: Connection, slot: int) -> str | None:
        code = (await http.request("GET", f"{API}/leaderboard"))[0]
        return None if code == 200 else str(code)

    async def battle(self, http: StreamingConnection, slot: int) -> str | None:
        code, body = await http.request("POST", f"{API}/battles", {"prompt": "How do plants make food?",
                                                                   "stream": True})
        if code != 201:
            return str(code)
        battle = json.loads(body)["id"]
        code, events = await http.read_stream(f"{API}/battles/{battle}/stream")
        if code != 200 or b"event: error" in events or b"event: done" not in events:
            return f"stream {code}" + (" with an error event" if b"event: error" in events else " without done")
        self.ledger.battles.append(battle)
        self.unvoted[slot].append(battle)
        return None

    async def vote(self, http: Connection, slot: int) -> str | None:
        battle = self.unvoted[slot].pop()
        picks = self.rng.integers(0, len(VERDICTS), size=2)
        body = {"helpfulness": VERDICTS[picks[0]], "safety": VERDICTS[picks[1]]}
        code, _ = await http.request("POST", f"{API}/battles/{battle}/vote", body, key=f"load-{battle}")
        if code == 200:
            self.ledger.acknowledged.append(battle)
        else:
            self.ledger.refusals[str(code)] = self.ledger.refusals.get(str(code), 0) + 1
        return None if code == 200 else str(code)


class CpuMeter:
    """CPU seconds (user + system) used by the service's processes and by Postgres' (the postmaster, its
    backends, and those already ended): per step, this says what the work costs whatever else the
    machine runs, where requests per second on a shared machine say how much CPU was left to it."""

    def __init__(self, service_pid: int, postmaster_pid: int | None) -> None:
        self.roots = {"service": service_pid, "postgres": postmaster_pid}

    def read(self) -> dict[str, float]:
        return {name: _tree_cpu_s(pid) if pid else float("nan") for name, pid in self.roots.items()}


def _tree_cpu_s(pid: int) -> float:
    try:
        root = psutil.Process(pid)
        times = root.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.Error):  # a backend that ended meanwhile counts in its parent
                child_times = child.cpu_times()
                total += child_times.user + child_times.system
        return total
    except psutil.Error:
        return float("nan")


async def run_level(port: int, clients: int, seconds: float, ledger: Ledger, rng: np.random.Generator,
                    meter: CpuMeter | None = None) -> dict[str, Any]:
    connections = [StreamingConnection("127.0.0.1", port) for _ in range(clients)]
    mix = Mix(connections, ledger, rng)
    cpu_before = meter.read() if meter else {}
    try:
        phase = await load(connections, mix.call, seconds=seconds, total=None)
    finally:
        for connection in connections:
            connection.close()
    steps = phase.requests + phase.errors
    cpu = {name: round(1000 * (meter.read()[name] - before) / steps, 2) if steps else None
           for name, before in cpu_before.items()} if meter else {}
    kinds = {name: kind.figures() for name, kind in mix.kinds.items()}
    errors = phase.errors
    # A level that never got to one of the kinds (no vote within a short level) has not shown it holds.
    held = errors == 0 and all(k["n"] and k["p99_ms"] < P99_GOAL_MS for k in kinds.values())
    return {"clients": clients, "seconds": round(phase.seconds, 2), "requests": steps,
            # A battle is two HTTP requests (create and stream); req/s counts each mix step once.
            "steps_per_s": round(steps / phase.seconds, 1), "errors": errors,
            "cpu_ms_per_step": cpu, "kinds": kinds, "held": held}


def take_snapshot_now(url: str) -> int | None:
    """One leaderboard snapshot, as the worker's job takes it, so reads serve a real page."""
    from core.db import create_engine, create_sessionmaker
    from core.settings import Settings
    from server.leaderboard.jobs import take_snapshot

    async def work() -> int | None:
        engine = create_engine(url)
        try:
            settings = Settings(_env_file=None, database_url=url, leaderboard_bootstrap_rounds=100)
            return await take_snapshot(create_sessionmaker(engine), settings, "benchmark")
        finally:
            await engine.dispose()

    return asyncio.run(work())


def start_service(env: dict[str, str], port: int, workers: int) -> subprocess.Popen:
    """`libra serve --no-worker` (with `--workers N` above 1), once it answers /readyz."""
    return start_server(env, port, *(["--workers", str(workers)] if workers > 1 else []))


# What one battle and one vote add to Postgres: these tables grow with them; the others grow with models,
# pairs or time windows (pair_counts, style_cells, rate_counters), not with traffic.
GROWS_WITH = {"battle": ("battles", "battle_turns", "battle_answers"), "vote": ("votes", "vote_flags", "vote_reviews")}


def storage(url: str) -> dict[str, dict[str, int]]:
    """Rows and bytes (pg_total_relation_size: heap, indexes, TOAST) of the tables that grow with traffic."""
    tables = [table for group in GROWS_WITH.values() for table in group]
    with psycopg.connect(libpq_url(url)) as conn:
        return {table: {"rows": conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0],
                        "bytes": conn.execute("SELECT pg_total_relation_size(%s)", (table,)).fetchone()[0]}
                for table in tables}


def bytes_per_row(before: dict[str, dict[str, int]], after: dict[str, dict[str, int]]) -> dict[str, Any]:
    """Growth over the levels divided by the battles (or votes) added: the warm-up's fixed cost (first
    pages of each table and index) is left out."""
    out: dict[str, Any] = {}
    for what, tables in GROWS_WITH.items():
        added = after[tables[0]]["rows"] - before[tables[0]]["rows"]
        grown = sum(after[t]["bytes"] - before[t]["bytes"] for t in tables)
        out[what] = {"added": added, "bytes_grown": grown, "bytes_each": round(grown / added) if added else None,
                     "rows_each": {t: round((after[t]["rows"] - before[t]["rows"]) / added, 2) if added else None
                                   for t in tables}}
    return {**out, "tables_after": after}


async def fill(port: int, battles: int, ledger: Ledger, rng: np.random.Generator) -> None:
    """`battles` more battles, each streamed to its end and voted on, by 8 clients: rows enough for the
    bytes per battle and per vote to be more than page rounding (8 KiB per table and index)."""
    connections = [StreamingConnection("127.0.0.1", port) for _ in range(8)]
    mix = Mix(connections, ledger, rng)

    async def battle_then_vote(http: Connection, _: int) -> bool:
        slot = connections.index(http)
        return await mix.battle(http, slot) is None and await mix.vote(http, slot) is None

    try:
        await load(connections, battle_then_vote, seconds=None, total=battles)
    finally:
        for connection in connections:
            connection.close()


async def all_levels(port: int, url: str, p: Plan, rng: np.random.Generator, fill_battles: int,
                     meter: CpuMeter) -> tuple[list[dict[str, Any]], Ledger, dict[str, Any]]:
    ledger = Ledger([], [])
    await run_level(port, 4, 1.0, ledger, rng)  # warm-up: imports, plan caches, votes for the snapshot
    await asyncio.to_thread(take_snapshot_now, url)
    before = await asyncio.to_thread(storage, url)
    levels = [await run_level(port, n, p.level_s, ledger, rng, meter) for n in p.levels]
    if fill_battles:
        await fill(port, fill_battles, ledger, rng)
    return levels, ledger, bytes_per_row(before, await asyncio.to_thread(storage, url))


def measure(p: Plan, workers: int, seed: int, fill_battles: int = 0) -> dict[str, Any]:
    stub, stub_url = start_stub()
    try:
        with (tempfile.TemporaryDirectory(prefix="libra-load-", dir="/tmp") as home,  # outside /root: see conftest
              embedded_postgres(Path(home) / "pg") as url):
            upgrade(url)
            register_stub_models(url, stub_url)
            port = free_port()
            server = start_service(server_env(url, home), port, workers)
            meter = CpuMeter(server.pid, postmaster_pid(Path(home) / "pg" / "pg"))
            try:
                levels, ledger, sizes = asyncio.run(all_levels(port, url, p, np.random.default_rng([seed, 13]),
                                                                 fill_battles, meter))
            finally:
                stop(server)
            return {"levels": levels, "votes_audit": {**audit(url, ledger), "refused_by_status": ledger.refusals},
                    "storage": sizes}
    finally:
        stub.kill()
        stub.join()


def targets(levels: list[dict[str, Any]], votes: dict[str, Any]) -> dict[str, Any]:
    held = max((level["clients"] for level in levels if level["held"]), default=None)
    equal = votes["acknowledged"] == votes["stored"] and votes["lost"] == 0 and votes["stored_not_acknowledged"] == 0
    return {
        "held_level": {"value": held, "goal": f"report (highest clients with every p99 < {P99_GOAL_MS:.0f} ms, "
                                              "0 errors)", "met": held is not None},
        "ack_equals_stored": {"value": equal, "goal": "true", "met": equal},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 s per level instead of 15 (under a minute)")
    parser.add_argument("--workers", type=int, default=1, help="API processes (`libra serve --workers N`)")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--storage", type=int, default=0, metavar="N",
                        help="after the levels, N more battles each voted on, for the bytes per battle and vote")
    args = parser.parse_args()
    if not 1 <= args.workers <= 64:
        parser.error("--workers must be between 1 and 64")
    p = plan(args.quick)
    started = time.perf_counter()
    if args.storage < 0:
        parser.error("--storage must be 0 or more")
    found = measure(p, args.workers, args.seed, args.storage)
    held = targets(found["levels"], found["votes_audit"])
    for level in found["levels"]:  # one readable line per level before the JSON
        kinds = "  ".join(f"{name} p50/p99 {k['p50_ms']}/{k['p99_ms']} ms" for name, k in level["kinds"].items())
        cpu = level["cpu_ms_per_step"]
        print(f"{level['clients']:>3} clients: {level['steps_per_s']:>7} steps/s, {level['errors']} errors, "
              f"{'held' if level['held'] else 'not held'}, CPU ms/step service {cpu.get('service')} postgres "
              f"{cpu.get('postgres')};  {kinds}", file=sys.stderr)
    print(json.dumps({
        "benchmark": "load", "quick": args.quick, "seed": args.seed, "cpus": os.cpu_count(), "workers": args.workers,
        "mix": MIX, "level_seconds": p.level_s,
        "server": f"libra serve --no-worker{f' --workers {args.workers}' if args.workers > 1 else ''}, embedded "
                  "Postgres, instant OpenAI-style stubs",
        "client": "raw keep-alive HTTP/1.1 connections (one per client, its own session) from one asyncio process "
                  "on the same machine",
        **found, "total_seconds": round(time.perf_counter() - started, 1), "targets": held,
    }))


if __name__ == "__main__":
    main()
