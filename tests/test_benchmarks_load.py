"""The load benchmark's own parts: the chunked SSE reader against a real socket, the seeded mix, what
counts as a held level, and the shape of its targets. No timings are asserted (the figures come from
`python -m benchmarks.load`)."""

import asyncio
import json

import numpy as np

from benchmarks import load
from benchmarks.arena import Ledger

SSE = [b"id: 1.0.1\nevent: delta\ndata: {}\n\n", b": ping\n\n", b"id: 1.0.2\nevent: done\ndata: {}\n\n"]


async def _serve_one_stream(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    for _ in range(2):  # two requests on one keep-alive connection: the reader must stop exactly at the end
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        for chunk in SSE:
            writer.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            await writer.drain()
        writer.write(b"0\r\n\r\n")
    await reader.readuntil(b"\r\n\r\n")
    body = b'{"error": "not found"}'
    writer.write(b"HTTP/1.1 404 Not Found\r\ncontent-length: %d\r\n\r\n" % len(body) + body)
    await writer.drain()
    writer.close()


async def test_the_stream_is_read_to_its_end_on_a_keep_alive_connection() -> None:
    server = await asyncio.start_server(_serve_one_stream, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    http = load.StreamingConnection("127.0.0.1", port)
    try:
        for _ in range(2):
            status, body = await asyncio.wait_for(http.read_stream("/s"), 10)
            assert status == 200 and body == b"".join(SSE)
        status, body = await asyncio.wait_for(http.read_stream("/missing"), 10)
        assert status == 404 and json.loads(body) == {"error": "not found"}
    finally:
        http.close()
        server.close()
        await server.wait_closed()


def test_the_mix_is_seeded_and_near_its_shares() -> None:
    first = load.Mix([], Ledger([], []), np.random.default_rng(3)).choices
    again = load.Mix([], Ledger([], []), np.random.default_rng(3)).choices
    assert (first == again).all()
    shares = {kind: float(np.mean(first == kind)) for kind in load.MIX}
    assert all(abs(shares[kind] - share) < 0.01 for kind, share in load.MIX.items())


def test_a_kind_never_measured_is_not_held_and_the_targets_say_so() -> None:
    unmeasured = load.Kind().figures()
    assert unmeasured == {"n": 0, "errors": 0, "failures": {}, "p50_ms": None, "p99_ms": None}
    failing = load.Kind()
    failing.failed("503")
    failing.failed("503")
    assert failing.figures()["errors"] == 2 and failing.figures()["failures"] == {"503": 2}
    fast = load.Kind([0.01, 0.02]).figures()
    assert fast["n"] == 2 and fast["p99_ms"] < load.P99_GOAL_MS
    levels = [{"clients": 1, "held": True}, {"clients": 4, "held": True}, {"clients": 16, "held": False}]
    votes = {"acknowledged": 10, "stored": 10, "lost": 0, "stored_not_acknowledged": 0}
    found = load.targets(levels, votes)
    json.dumps(found)
    assert found["held_level"]["value"] == 4 and found["held_level"]["met"]
    assert found["ack_equals_stored"] == {"value": True, "goal": "true", "met": True}
    lost = load.targets([{"clients": 1, "held": False}], {**votes, "stored": 9, "lost": 1})
    assert lost["held_level"] == {**lost["held_level"], "value": None, "met": False}
    assert not lost["ack_equals_stored"]["met"]
