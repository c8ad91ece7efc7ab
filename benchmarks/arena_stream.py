"""Arena streaming benchmark (issue 11, item 9): time to first token through the arena's SSE stream
against the backend's own, measured in the same run.

Run from the repository root: `python -m benchmarks.arena_stream [--quick]`; the last line of stdout is
one JSON object (figures, baseline, targets).

Set-up: an embedded Postgres in a temp folder, migrated; two active contestants that point at an
OpenAI-compatible stub in its own process which streams (SSE) a first chunk after FIRST_TOKEN_S and
then one word every WORD_S; a real `libra serve --no-worker` in a subprocess.

- **Backend's own TTFT**: a keep-alive client posts a streaming chat request straight to the stub and
  times the first chunk with content.
- **Arena TTFT**: `POST /battles {"stream": true}` then `GET /battles/{id}/stream`, timed from the POST
  to the first `delta` event (either side), so the battle's creation (pair draw, two inserts) and the
  arena's pacing tick are inside it. Also reported: until both sides' first delta, and until `done`.

Battles run one after another (one visitor), so queueing does not blur the overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.arena import free_port, server_env, start_server, stop
from core.migrate import upgrade
from core.pgserver import embedded_postgres

API = "/api/v1"
FIRST_TOKEN_S = 0.1
WORD_S = 0.01
WORDS = 20
OVERHEAD_GOAL_MS = 50.0


class _StreamingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_POST(self) -> None:  # the name http.server dispatches to
        arrived = time.time()
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(self.server.arrivals, "a") as log:  # type: ignore[attr-defined]
            log.write(f"{arrived}\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(FIRST_TOKEN_S)
        for i in range(WORDS):
            if i:
                time.sleep(WORD_S)
            self._event({"choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]})
        self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 3, "completion_tokens": WORDS}})
        self._chunk(b"data: [DONE]\n\n")
        self._chunk(b"")

    def _event(self, payload: dict[str, Any]) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def log_message(self, *args: object) -> None:
        return None


class _StubServer(ThreadingHTTPServer):
    request_queue_size = 256

    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # a client that hangs up early (the service at exit) is not news


def _serve(ports: Any, arrivals: str) -> None:  # a multiprocessing queue; a file for arrival times
    httpd = _StubServer(("127.0.0.1", 0), _StreamingHandler)
    httpd.arrivals = arrivals  # type: ignore[attr-defined]
    httpd.daemon_threads = True
    ports.put(httpd.server_address[1])
    httpd.serve_forever()


def start_streaming_stub(arrivals: str) -> tuple[multiprocessing.Process, str]:
    context = multiprocessing.get_context("spawn")
    ports: Any = context.Queue()
    process = context.Process(target=_serve, args=(ports, arrivals), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=30)}/v1"


def register_models(url: str, base_url: str) -> None:
    from core.db import create_engine, create_sessionmaker, transaction
    from core.registry.models import ContestantStatus
    from core.registry.schemas import ContestantIn
    from server.contestants import register

    async def work() -> None:
        engine = create_engine(url)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                for i in range(2):
                    config = {"kind": "openai", "base_url": base_url, "model": f"stream-{i}", "max_retries": 0}
                    entry = ContestantIn(slug=f"stream-{i}", display_name=f"Stream {i}", organisation="Bench",
                                         description="streaming stub", config=config)
                    await register(session, entry, ContestantStatus.active, actor="benchmark")
        finally:
            await engine.dispose()

    asyncio.run(work())


async def backend_ttft(base_url: str, runs: int) -> list[float]:
    body = {"model": "stream-0", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    times = []
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(runs):
            started = time.perf_counter()
            async with http.stream("POST", f"{base_url}/chat/completions", json=body) as response:
                first = None
                async for line in response.aiter_lines():
                    if first is None and '"content"' in line:
                        first = time.perf_counter() - started
            times.append(first)
    return times


async def arena_ttft(port: int, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"first": [], "both": [], "done": [], "post": [], "wall_start": []}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}{API}", timeout=60) as http:
        for _ in range(runs):
            out["wall_start"].append(time.time())
            started = time.perf_counter()
            created = await http.post("/battles", json={"prompt": "Say twenty words.", "stream": True})
            created.raise_for_status()
            out["post"].append(time.perf_counter() - started)
            seen: dict[str, float] = {}
            event = None
            async with http.stream("GET", f"/battles/{created.json()['id']}/stream") as response:
                async for line in response.aiter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "delta":
                        seen.setdefault(json.loads(line[6:])["side"], time.perf_counter() - started)
                    elif line.startswith("data: ") and event == "done":
                        out["done"].append(time.perf_counter() - started)
            out["first"].append(min(seen.values()))
            out["both"].append(max(seen.values()))
    return out


def _ms(values: list[float]) -> dict[str, float]:
    arr = np.asarray(values) * 1000
    return {"p50_ms": round(float(np.percentile(arr, 50)), 1), "p90_ms": round(float(np.percentile(arr, 90)), 1),
            "n": len(values)}


def measure(quick: bool) -> dict[str, Any]:
    runs = 24 if quick else 100
    with (tempfile.TemporaryDirectory(prefix="libra-bench-stream-", dir="/tmp") as home,
          embedded_postgres(Path(home) / "pg") as url):
        arrivals = Path(home) / "arrivals.txt"
        stub, base_url = start_streaming_stub(str(arrivals))
        try:
            upgrade(url)
            register_models(url, base_url)
            port = free_port()
            server = start_server(server_env(url, home), port)
            try:
                asyncio.run(arena_ttft(port, 3))  # warm-up: connections, first imports, plan caches
                arrivals.write_text("")
                arena = asyncio.run(arena_ttft(port, runs))
                arena["reached"] = _reached(arena["wall_start"], arrivals)
                own = asyncio.run(backend_ttft(base_url, runs))
            finally:
                stop(server)
        finally:
            stub.terminate()
    return _result(own, arena)


def _reached(starts: list[float], arrivals: Path) -> list[float]:
    """Per battle, from the POST to the first of its two backend requests reaching the stub."""
    times = sorted(float(line) for line in arrivals.read_text().split())
    return [min(t for t in times if t >= start) - start for start in starts]


def _result(own: list[float], arena: dict[str, list[float]]) -> dict[str, Any]:
    backend, first = _ms(own), _ms(arena["first"])
    overhead = {k: round(first[k] - backend[k], 1) for k in ("p50_ms", "p90_ms")}
    met = all(v <= OVERHEAD_GOAL_MS for v in overhead.values())
    return {
        "figures": {"arena_first_delta": first, "arena_both_sides_first_delta": _ms(arena["both"]),
                    "arena_done": _ms(arena["done"]), "ttft_overhead_ms": overhead,
                    # Where the overhead goes: the POST's own answer, and until a backend is asked.
                    "post_response": _ms(arena["post"]), "backend_reached_after_post": _ms(arena["reached"]),
                    # Per battle: first delta - backend reached - the backend's own median TTFT, i.e. what
                    # the stream path (backend client, pacing tick, hub, SSE) adds once the backend is asked.
                    "stream_path_overhead": _ms([f - r - float(np.median(own)) for f, r in
                                                 zip(arena["first"], arena["reached"], strict=True)]),
                    "stub": {"first_token_s": FIRST_TOKEN_S, "word_s": WORD_S, "words": WORDS}},
        "baseline": {"backend_own_ttft": backend},
        "targets": {"stream_ttft_overhead_ms": {
            "value": overhead, "goal": f"arena TTFT <= backend's own + {OVERHEAD_GOAL_MS:.0f} ms (p50 and p90)",
            "met": met}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="24 battles instead of 100 (under a minute)")
    print(json.dumps(measure(parser.parse_args().quick)))


if __name__ == "__main__":
    main()
