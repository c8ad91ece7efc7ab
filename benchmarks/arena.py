"""Arena benchmark (issue 11): the vote path, battle creation, streaming, pairing, rigging, snapshot cost.

Run from the repository root: `python -m benchmarks.arena [--quick] [--skip PART]`. The last line of
stdout is one JSON object with the figures, the `/healthz` baseline measured in the same run, and a
`targets` object (each with `value`, `goal`, `met`).

The HTTP part starts a real `libra serve` (no worker) on an embedded Postgres in a temp folder, with
models that point at an OpenAI-compatible stub in its own process that answers at once, so what is
timed is the service, not a model. The load client is a lean keep-alive HTTP/1.1 client in one asyncio
process on the same machine: on a small machine it still competes with the server for CPU, which
lowers the `/healthz` baseline and so flatters the ratios; the JSON says so. Each connection serves one
visitor after another (a few battles and their votes each, every visitor with its own session cookie
and its own /24 address, passed as X-Forwarded-For with the client trusted as the proxy), so the
service runs with its default vote caps, burst rule and rate limits, as deployed. `--one-visitor` runs
it as before 2026-12-03: one session per connection on one address, the caps off and the limits raised
(all still queried), where what the caps' queries read grows with the run.

After the server stops, `http.battle_ceiling` times a battle's two backend calls alone, in this process,
through the service's own `inference.BackendPool` against the same stubs: the battles a second one core
could make if the rest of a battle cost nothing, over `/healthz`'s rate. The battle target's `note`
gives it: while the API process makes the answers, `battle_create_over_healthz_rps` cannot exceed it.

The other parts are modules of their own, each also runnable alone with the same output shape:
`arena_stream` (time to first token through the SSE stream against the backend's own),
`arena_pairing` (votes to 50-point intervals, active against uniform pairs, by simulation),
`arena_rigging` (a campaign of 500 votes through the real vote path, ratings with and without the
integrity filters) and `arena_snapshot` (snapshot time and memory at many stored votes against few).
With every part, `--quick` takes several minutes, not one: the snapshot part alone fills a database
with 110k votes; `--skip snapshot` leaves it out. `benchmarks.arena_engine` (a battle during an
evaluation on the embedded model) is separate: it needs the real model and minutes of decoding.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import importlib
import json
import multiprocessing
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import psycopg

from benchmarks.arena_pairing import SimPlan
from core.db import libpq_url
from core.migrate import upgrade
from core.pg_reaper import postmaster_pid
from core.pgserver import embedded_postgres

CONCURRENCY = 16
STUB_MODELS = 4
RAISED_LIMIT = 1_000_000_000
REQUEST_TIMEOUT_S = 30.0
API = "/api/v1"


VISITOR_BATTLES = 4  # battles (and votes) of each simulated visitor before the next one takes the connection


@dataclass(frozen=True)
class Plan:
    phase_s: float
    battle_s: float  # longer than phase_s: the battles made here are the ones voted on
    pairing: SimPlan
    # True: each connection serves one visitor after another, each with its own session and address, under
    # the service's default caps and limits. False (--one-visitor): one session per connection on one
    # address for the whole run, with the caps off and the limits raised.
    visitors: bool = True
    # True: each contestant is served by a stub endpoint of its own, as contestants are in a deployment.
    # False (--one-endpoint): all share one, with all their connections in one client (before 2026-12-03).
    own_endpoints: bool = True
    answer_words: int = 3  # words in each stub answer, streamed one per chunk (--answer-words)


def plan(quick: bool, visitors: bool = True, own_endpoints: bool = True, answer_words: int = 3) -> Plan:
    phases = (4.0, 8.0, SimPlan(8, 3, 200, 60_000)) if quick else (15.0, 30.0, SimPlan(12, 10, 100, 200_000))
    return Plan(*phases, visitors=visitors, own_endpoints=own_endpoints, answer_words=answer_words)


# --- the instant stub backend (its own process, so it takes no GIL from the load client) ---------------

SHORT_ANSWER = ("A ", "short ", "answer.")  # the stub's answer unless told otherwise (--answer-words)
# A longer answer, for --answer-words N: prose with a markdown header, a list and bold words (the style
# features count them), cut or repeated to N words.
_PROSE_TEXT = ("## Photosynthesis\n\nPlants make their food from light, water and carbon dioxide. **Chlorophyll** "
               "in the leaves absorbs light, and the energy splits water and builds sugar.\n\n- Light reactions "
               "happen in the thylakoids.\n- The Calvin cycle fixes carbon in the stroma.\n\nOxygen is released "
               "as a by-product, and the sugar feeds the plant's growth and stores energy for later.")
_PROSE = tuple(re.findall(r"\S+\s*", _PROSE_TEXT + " "))  # each word with the space or line breaks after it


def answer_words(n: int) -> tuple[str, ...]:
    """The stub's answer as n streamed pieces, a word (and what follows it) each."""
    if n == len(SHORT_ANSWER):
        return SHORT_ANSWER
    pieces = [_PROSE[i % len(_PROSE)] for i in range(n)]
    pieces[-1] = pieces[-1].rstrip()
    return tuple(pieces)


class _InstantHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real endpoint would
    # One buffered write per response and no Nagle: headers and body in separate segments meet the
    # client's delayed ACK and cost ~40 ms per answer, which is what a first version of this stub measured.
    wbufsize = 65536
    disable_nagle_algorithm = True

    words: tuple[str, ...] = SHORT_ANSWER  # set per stub process (`_serve_stub`)

    def do_POST(self) -> None:  # the name http.server dispatches to
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        usage = {"prompt_tokens": 3, "completion_tokens": len(self.words)}
        if request.get("stream"):  # the arena streams: OpenAI's SSE chunks, usage, then [DONE], in one write
            chunks = [{"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]}
                      for word in self.words]  # a word per chunk, as a model streams about a token per chunk
            chunks += [{"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                       {"choices": [], "usage": usage}]
            body = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks).encode() + b"data: [DONE]\n\n"
            kind = "text/event-stream"
        else:
            body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "".join(self.words)},
                                            "finish_reason": "stop"}], "usage": usage}).encode()
            kind = "application/json"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return None


class _StubServer(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 resets connections when 32 answers start at once


def _serve_stub(ports: Any, words: int = len(SHORT_ANSWER)) -> None:  # a multiprocessing queue
    _InstantHandler.words = answer_words(words)
    httpd = _StubServer(("127.0.0.1", 0), _InstantHandler)
    httpd.daemon_threads = True
    ports.put(httpd.server_address[1])
    httpd.serve_forever()


def start_stub(words: int = len(SHORT_ANSWER)) -> tuple[multiprocessing.Process, str]:
    ports: Any = multiprocessing.get_context("spawn").Queue()
    process = multiprocessing.get_context("spawn").Process(target=_serve_stub, args=(ports, words), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=30)}/v1"


@contextmanager
def stubs_running(count: int, words: int = len(SHORT_ANSWER)) -> Iterator[list[str]]:
    """`count` instant stub endpoints, each in a process of its own, stopped on leaving: their URLs."""
    stubs = []
    try:
        for _ in range(count):
            stubs.append(start_stub(words))
        yield [url for _, url in stubs]
    finally:
        for process, _ in stubs:
            process.kill()
            process.join()


def register_stub_models(url: str, base_url: str | list[str]) -> None:
    """Active contestants that answer through the stub (or stubs: contestant i through stub i modulo their
    number), registered the way an admin's CLI would."""
    urls = [base_url] if isinstance(base_url, str) else base_url
    from core.db import create_engine, create_sessionmaker, transaction
    from core.registry.models import ContestantStatus
    from core.registry.schemas import ContestantIn
    from server.contestants import register

    async def work() -> None:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                for i in range(STUB_MODELS):
                    # The pool limits concurrent calls per endpoint (default 4): raised, since models may share one.
                    config = {"kind": "openai", "base_url": urls[i % len(urls)], "model": f"stub-{i}", "max_retries": 0,
                              "max_concurrency": 2 * CONCURRENCY}
                    entry = ContestantIn(slug=f"stub-{i}", display_name=f"Stub {i}", organisation="Bench",
                                         description="instant stub", config=config)
                    await register(session, entry, ContestantStatus.active, actor="benchmark")
        finally:
            await engine.dispose()

    asyncio.run(work())


# --- the service under load -----------------------------------------------------------------------------


def server_env(url: str, home: str, visitors: bool = False) -> dict[str, str]:
    env = {
        **os.environ, "LIBRA_DATABASE_URL": url, "LIBRA_HOME": home, "LIBRA_SEED_DEFAULTS": "false",
        "LIBRA_FIRST_RUN_EVALUATIONS": "false", "LIBRA_EGRESS_ALLOW": "127.0.0.1/32", "LIBRA_LOG_LEVEL": "WARNING",
    }
    if visitors:  # the client is the visitors' proxy: their addresses come in X-Forwarded-For
        return {**env, "LIBRA_TRUSTED_PROXIES": "127.0.0.1/32"}
    return {
        **env, "LIBRA_RATE_BATTLES": str(RAISED_LIMIT), "LIBRA_RATE_VOTES": str(RAISED_LIMIT),
        # 16 clients on one address cast thousands of votes: the caps are off (0) and the burst rule's
        # threshold out of reach, but every vote still runs the caps' and the rules' queries.
        "LIBRA_ARENA_VOTES_PER_SESSION_HOUR": "0", "LIBRA_ARENA_VOTES_PER_ADDRESS_HOUR": "0",
        "LIBRA_ARENA_BURST_VOTES": str(RAISED_LIMIT),
        "LIBRA_RATE_REQUESTS_PER_S": "0",  # the requests per address: off (in memory, nothing left to check)
    }


def visitor_address(n: int) -> str:
    """Visitor n's address, each in an address range (/24) of its own, as most visitors of a public site."""
    return f"10.{(n >> 8) & 255}.{n & 255}.7"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Ctrl-C, as at a terminal; killed if it does not stop in 30 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def start_server(env: dict[str, str], port: int, *extra: str) -> subprocess.Popen:
    """`libra serve --no-worker [extra...]`, once it answers /readyz."""
    libra = str(Path(sys.executable).with_name("libra"))
    process = subprocess.Popen([libra, "serve", "--port", str(port), "--no-worker", *extra], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"libra serve exited early:\n{process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}{API}/readyz", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise TimeoutError("libra serve was not ready in 90 s")


@dataclass(frozen=True)
class Phase:
    requests: int
    errors: int
    seconds: float
    latencies_s: np.ndarray

    def figures(self) -> dict[str, Any]:
        lat = self.latencies_s * 1000 if self.latencies_s.size else np.array([np.nan])
        return {"requests": self.requests, "errors": self.errors, "seconds": round(self.seconds, 3),
                "req_per_s": round(self.requests / self.seconds, 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2)}


class Connection:
    """One keep-alive HTTP/1.1 connection with the least client work (httpx costs several times the
    server's own time per `/healthz` on a 2-core machine, which would cap the baseline). It keeps the
    session cookie the service sets, as a browser would; responses carry Content-Length (FastAPI JSON)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port, self.cookie = host, port, b""
        self.forwarded_for: str | None = None  # the visitor's address, as a proxy would pass it on
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: dict | None = None, key: str | None = None
                      ) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        payload = json.dumps(body).encode() if body is not None else b""
        extra = f"Idempotency-Key: {key}\r\n".encode() if key else b""
        if self.forwarded_for:
            extra += f"X-Forwarded-For: {self.forwarded_for}\r\n".encode()
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(payload)}\r\n"
                "Content-Type: application/json\r\n").encode() + extra + self.cookie + b"\r\n"
        self.writer.write(head + payload)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
            elif name.lower() == b"set-cookie" and not self.cookie:
                self.cookie = b"Cookie: " + value.strip().split(b";")[0] + b"\r\n"
        return int(lines[0].split()[1]), await self.reader.readexactly(length)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


Call = Callable[[Connection, int], Awaitable[bool]]


def own_cpu_s() -> float:
    """CPU seconds (user + system) this process has used so far."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    return used.ru_utime + used.ru_stime


def tree_cpu_s(root: psutil.Process) -> float:
    """CPU seconds (user + system) used so far by a process and its descendants: the live ones, and through
    their parents' children_* times the ended ones (Postgres ends a backend with each closed connection)."""
    total = 0.0
    for process in [root, *root.children(recursive=True)]:
        try:
            times = process.cpu_times()
            total += times.user + times.system + times.children_user + times.children_system
        except psutil.NoSuchProcess:
            pass
    return total


class CpuMeter:
    """Cores used during a phase: by this process (the client), a server's processes, and Postgres."""

    def __init__(self, server_pid: int, postgres_pid: int | None) -> None:
        self.server = psutil.Process(server_pid)
        self.postgres = psutil.Process(postgres_pid) if postgres_pid else None

    def _used(self) -> tuple[float, float, float]:
        postgres = tree_cpu_s(self.postgres) if self.postgres else 0.0
        return time.process_time(), tree_cpu_s(self.server), postgres

    async def measure(self, phase: Awaitable[Phase]) -> dict[str, Any]:
        wall, before = time.perf_counter(), self._used()
        result = await phase
        wall = time.perf_counter() - wall
        used = [b - a for a, b in zip(before, self._used(), strict=True)]
        client, server, postgres = (round(u / wall, 2) for u in used)
        done = result.requests + result.errors
        # CPU per request: what a ratio to /healthz is made of (the service's, Postgres', the client's).
        per_request = {f"{name}_cpu_ms_per_request": round(1000 * u / done, 3) if done else None
                       for name, u in zip(("client", "server", "postgres"), used, strict=True)}
        return {**result.figures(), "client_cpu_cores": client, "server_cpu_cores": server,
                "postgres_cpu_cores": postgres, **per_request}


async def load(connections: list[Connection], call: Call, *, seconds: float | None, total: int | None) -> Phase:
    """One worker per connection calls until the time is up or `total` calls are made; successes are timed."""
    latencies: list[float] = []
    errors, issued = 0, 0
    stop_at = time.perf_counter() + seconds if seconds is not None else float("inf")

    async def worker(connection: Connection) -> None:
        nonlocal errors, issued
        while time.perf_counter() < stop_at and (total is None or issued < total):
            index, issued = issued, issued + 1
            began = time.perf_counter()
            try:  # a request the server never answers is an error, not a benchmark that hangs
                ok = await asyncio.wait_for(call(connection, index), REQUEST_TIMEOUT_S)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):  # the server closed it: counted, then reopened
                connection.close()
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    return Phase(len(latencies), errors, time.perf_counter() - started, np.array(latencies))


async def load_own(connections: list[Connection], call: Call, work: dict[int, list[int]]) -> Phase:
    """Each connection makes the calls of its own items (votes go on the connection, so the session,
    that created the battle); successes are timed."""
    latencies: list[float] = []
    errors = 0

    async def worker(slot: int, connection: Connection) -> None:
        nonlocal errors
        for index in work.get(slot, []):
            began = time.perf_counter()
            try:  # a request the server never answers is an error, not a benchmark that hangs
                ok = await asyncio.wait_for(call(connection, index), REQUEST_TIMEOUT_S)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                connection.close()
                ok = False
            if ok:
                latencies.append(time.perf_counter() - began)
            else:
                errors += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(slot, c) for slot, c in enumerate(connections)))
    return Phase(len(latencies), errors, time.perf_counter() - started, np.array(latencies))


@dataclass
class Ledger:
    """What the client saw: battles created (and on which connection), and the battles whose vote was
    acknowledged, with the answer each acknowledgement carried."""

    battles: list[str]
    acknowledged: list[str]
    owner: dict[str, int] = field(default_factory=dict)
    visitor: dict[str, tuple[bytes, str | None]] = field(default_factory=dict)  # battle: (cookie, address)
    answers: dict[str, bytes] = field(default_factory=dict)
    refusals: dict[str, int] = field(default_factory=dict)  # votes not acknowledged, by HTTP status

    def by_connection(self, battles: list[str]) -> dict[int, list[int]]:
        work: dict[int, list[int]] = {}
        for index, battle in enumerate(battles):
            work.setdefault(self.owner[battle], []).append(index)
        return work


async def http_phases(port: int, p: Plan, rng: np.random.Generator, meter: CpuMeter) -> tuple[dict[str, Any], Ledger]:
    ledger = Ledger([], [])
    verdicts = np.array(["a", "b", "tie", "both_bad"])
    picks = rng.integers(0, 4, size=(1_000_000, 2))  # drawn up front: the timed loop does no sampling

    async def healthz(http: Connection, _: int) -> bool:
        return (await http.request("GET", f"{API}/healthz"))[0] == 200

    made: dict[int, int] = {}  # battles per connection
    visitors = iter(range(1_000_000))

    async def create(http: Connection, _: int) -> bool:
        slot = connections.index(http)
        if p.visitors and made.get(slot, 0) % VISITOR_BATTLES == 0:  # the next visitor: no cookie yet
            http.cookie, http.forwarded_for = b"", visitor_address(next(visitors))
        code, body = await http.request("POST", f"{API}/battles", {"prompt": "How do plants make food?"})
        battle = json.loads(body) if code == 201 else {}
        if battle.get("status") == "ready":
            made[slot] = made.get(slot, 0) + 1
            ledger.battles.append(battle["id"])
            ledger.owner[battle["id"]] = slot
            ledger.visitor[battle["id"]] = (http.cookie, http.forwarded_for)
        return battle.get("status") == "ready"

    def as_voter(http: Connection, battle: str) -> str:
        http.cookie, http.forwarded_for = ledger.visitor[battle]
        return battle

    def verdict(i: int) -> dict[str, str]:
        return {"helpfulness": str(verdicts[picks[i, 0]]), "safety": str(verdicts[picks[i, 1]])}

    async def vote(http: Connection, i: int) -> bool:
        battle = as_voter(http, ledger.battles[i])
        code, body = await http.request("POST", f"{API}/battles/{battle}/vote", verdict(i), key=f"bench-{battle}")
        if code == 200:
            ledger.acknowledged.append(battle)
            ledger.answers[battle] = body
        else:
            ledger.refusals[str(code)] = ledger.refusals.get(str(code), 0) + 1
        return code == 200

    async def retry(http: Connection, i: int) -> bool:  # the same request again (a lost answer): its answer, once
        battle = as_voter(http, ledger.acknowledged[i])
        code, body = await http.request("POST", f"{API}/battles/{battle}/vote", verdict(ledger.battles.index(battle)),
                                        key=f"bench-{battle}")
        return code == 200 and body == ledger.answers[battle]

    async def revote(http: Connection, i: int) -> bool:  # another vote on a voted battle: must be refused
        battle = as_voter(http, ledger.acknowledged[i])
        code, _ = await http.request("POST", f"{API}/battles/{battle}/vote", {"helpfulness": "a"})
        return code == 409

    connections = [Connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    try:
        await load(connections, healthz, seconds=1.0, total=None)  # warm-up: connections, cookies, caches
        health = await meter.measure(load(connections, healthz, seconds=p.phase_s, total=None))
        battles = await meter.measure(load(connections, create, seconds=p.battle_s, total=None))
        votes = await meter.measure(load_own(connections, vote, ledger.by_connection(ledger.battles)))
        sample = ledger.acknowledged[:200]
        retried = await load_own(connections, retry, ledger.by_connection(sample))
        refused = await load_own(connections, revote, ledger.by_connection(sample))
    finally:
        for connection in connections:
            connection.close()
    phases = {"healthz": health, "battle_create": battles, "vote": {**votes, "refused_by_status": ledger.refusals},
              "retried_votes_same_key": {"sent": retried.requests + retried.errors,
                                         "same_answer_200": retried.requests},
              "revotes_refused": {"sent": refused.requests + refused.errors, "refused_409": refused.requests}}
    return phases, ledger


def audit(url: str, ledger: Ledger) -> dict[str, Any]:
    """Votes in the database against acknowledged responses; pair counts against votes; and the stub's
    own answer time as the service recorded it, to tell backend time from service time in battles."""
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute("SELECT battle_id::text, count(*) FROM votes GROUP BY battle_id").fetchall()
        helpful = conn.execute("SELECT coalesce(sum(lo_wins + hi_wins + ties + both_bad), 0) FROM pair_counts "
                               "WHERE dimension = 'helpfulness'").fetchone()[0]
        backend = conn.execute("SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY latency_s) "
                               "FROM battle_answers WHERE status = 'ok'").fetchone()[0] or [None, None]
    stored = {battle: int(n) for battle, n in rows}
    acked = set(ledger.acknowledged)
    return {
        "acknowledged": len(ledger.acknowledged),
        "stored": sum(stored.values()),
        "lost": len(acked - stored.keys()),
        "duplicated": sum(n - 1 for n in stored.values() if n > 1) + len(ledger.acknowledged) - len(acked),
        "stored_not_acknowledged": len(stored.keys() - acked),
        "helpfulness_pair_count_total": int(helpful),
        "backend_answer_p50_p99_ms": [None if x is None else round(1000 * x, 2) for x in backend],
    }


def measure_http(p: Plan, rng: np.random.Generator) -> dict[str, Any]:
    folder = tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp")  # outside /root: see conftest
    with stubs_running(STUB_MODELS if p.own_endpoints else 1, p.answer_words) as stub_urls, folder as home, \
            embedded_postgres(Path(home) / "pg") as url:
        upgrade(url)
        register_stub_models(url, stub_urls)
        port = free_port()
        server = start_server(server_env(url, home, p.visitors), port)
        meter = CpuMeter(server.pid, postmaster_pid(Path(home) / "pg" / "pg"))  # embedded_postgres serves pg/pg
        try:
            phases, ledger = asyncio.run(http_phases(port, p, rng, meter))
        finally:
            stop(server)
        return {**phases, "votes_audit": audit(url, ledger),
                "battle_ceiling": battle_ceiling(stub_urls, phases["healthz"]["req_per_s"])}


def battle_ceiling(stub_urls: list[str], healthz_per_s: float) -> dict[str, Any]:
    """The most battles a second that the API process could make if it did nothing but a battle's two
    backend calls on a whole core (its request, draw and writes cost nothing), over `/healthz`'s rate: the
    highest `battle_create_over_healthz_rps` possible while the API process makes the answers."""
    from benchmarks.backend_clients import battle_calls_cpu_ms  # here: that module imports this one

    ms = asyncio.run(battle_calls_cpu_ms(stub_urls, CONCURRENCY, 400))
    return {"two_backend_calls_cpu_ms": ms, "battles_per_s": round(1000 / ms, 1),
            "over_healthz_rps": round(1000 / ms / healthz_per_s, 4),
            "note": f"{CONCURRENCY} battles at a time, each streaming its two answers from the stubs through "
                    "inference.BackendPool (httpx) in this process after the server stopped; CPU of this process, "
                    "median of 5 rounds of 400"}


# --- targets and the report ---------------------------------------------------------------------------------


def _target(value: float | None, goal: str, met: bool, note: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"value": None if value is None else round(float(value), 4), "goal": goal,
                           "met": bool(met and value is not None)}
    return {**out, "note": note} if note else out


def targets(http: dict[str, Any], parts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The vote path's targets, measured here, then each part's own (stream, pairing, rigging, snapshot, draw)."""
    base = http["healthz"]["req_per_s"]
    vote_ratio = http["vote"]["req_per_s"] / base
    battle_ratio = http["battle_create"]["req_per_s"] / base
    audit_ = http["votes_audit"]
    retried = http.get("retried_votes_same_key", {"sent": 0})
    retried_share = retried["same_answer_200"] / retried["sent"] if retried["sent"] else None
    found = {
        "vote_over_healthz_rps": _target(vote_ratio, ">= 0.25", vote_ratio >= 0.25),
        "vote_p99_ms": _target(http["vote"]["p99_ms"], "< 50", http["vote"]["p99_ms"] < 50),
        "battle_create_over_healthz_rps": _target(
            battle_ratio, ">= 0.2", battle_ratio >= 0.2,
            f"at most {http['battle_ceiling']['over_healthz_rps']} while the API process makes the answers: "
            "its two backend calls alone (http.battle_ceiling)" if "battle_ceiling" in http else None),
        "lost_votes": _target(audit_["lost"], "0", audit_["lost"] == 0),
        "duplicated_votes": _target(audit_["duplicated"], "0", audit_["duplicated"] == 0),
        "retried_votes_same_answer": _target(retried_share, "1 (each retry with its key: 200, the stored answer)",
                                             retried_share == 1),
    }
    for name, part in parts.items():
        for target, value in part.get("targets", {}).items():
            found[target if target not in found else f"{name}_{target}"] = value
    return found


# The parts measured by their own modules, each printing the same shape alone (python -m benchmarks.arena_<part>);
# imported when run, since some of them reuse this module's server and stub helpers.
PARTS = ("stream", "pairing", "rigging", "snapshot", "draw")
SEEDED = {"pairing", "rigging"}


def run_part(name: str, quick: bool, seed: int) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.arena_{name}")
    return module.measure(quick, seed) if name in SEEDED else module.measure(quick)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short load phases and small simulations")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--skip", action="append", default=[], choices=sorted(PARTS),
                        help="leave out a part (its targets are then missing); repeatable")
    parser.add_argument("--one-visitor", action="store_true",
                        help="each connection is one session on one address for the whole run, with the vote caps "
                             "off and the rate limits raised (how this benchmark ran before 2026-12-03)")
    parser.add_argument("--one-endpoint", action="store_true",
                        help="every contestant served by one stub endpoint (how this benchmark ran before 2026-12-03)")
    parser.add_argument("--answer-words", type=int, default=len(SHORT_ANSWER), metavar="N",
                        help="words in each stub answer, streamed a word per chunk (default 3; real answers run "
                             "to a few hundred, and the costs that grow with them show only then). The service "
                             "keeps at most LIBRA_BATTLE_MAX_TOKENS x 32 characters of an answer (about 1,000 "
                             "of these words at the default 200 tokens) and cuts the rest")
    args = parser.parse_args()
    if not 1 <= args.answer_words <= 4000:
        parser.error("--answer-words must be between 1 and 4000")
    p = plan(args.quick, visitors=not args.one_visitor, own_endpoints=not args.one_endpoint,
             answer_words=args.answer_words)
    started = time.perf_counter()
    http = measure_http(p, np.random.default_rng([args.seed, 9]))
    parts, seconds = {}, {}
    for name in PARTS:
        if name not in args.skip:
            began = time.perf_counter()
            parts[name] = run_part(name, args.quick, args.seed)
            seconds[name] = round(time.perf_counter() - began, 1)
    result = {
        "benchmark": "arena", "quick": args.quick, "seed": args.seed, "cpus": os.cpu_count(),
        "concurrency": CONCURRENCY, "phase_seconds": p.phase_s, "battle_phase_seconds": p.battle_s,
        "stub_models": STUB_MODELS, "answer_words": p.answer_words,
        "server": "libra serve --no-worker (one uvicorn process), embedded Postgres, instant OpenAI-style stub "
                  + (f"endpoints, one per contestant ({STUB_MODELS})" if p.own_endpoints else
                     "endpoint shared by every contestant"),
        "client": f"{CONCURRENCY} raw keep-alive HTTP/1.1 connections from one asyncio process on the same "
                  "machine (it competes with the server for CPU, so /healthz is partly client-bound)",
        "visitors": (f"each connection serves one visitor after another, {VISITOR_BATTLES} battles and their votes "
                     "each, every visitor with its own session and its own /24 address (X-Forwarded-For, the "
                     "client trusted as a proxy)") if p.visitors else
                    "one session per connection, all on one address, for the whole run",
        "rate_limits": "the service's defaults: vote caps, burst rule and rate limits on" if p.visitors else
                       (f"LIBRA_RATE_BATTLES and LIBRA_RATE_VOTES raised to {RAISED_LIMIT}, vote caps off, burst "
                        "threshold out of reach (all still checked in Postgres on every request), requests per "
                        "address off"),
        "baseline": "GET /api/v1/healthz at the same concurrency, same client, same run",
        "http": http,
        **{name: {"figures": part.get("figures"), "baseline": part.get("baseline")} for name, part in parts.items()},
        "part_seconds": seconds, "total_seconds": round(time.perf_counter() - started, 2),
        "targets": targets(http, parts),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
