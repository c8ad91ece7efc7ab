"""A streamed battle over real HTTP: a real `libra serve` subprocess, a real OpenAI-compatible endpoint
that streams slowly, and a client that hangs up mid-stream, then reconnects with Last-Event-ID."""

import asyncio
import contextlib
import time
import uuid

import httpx

from tests.arena.streaming_doubles import parse_sse
from tests.http_stub import StreamingHandler, serving
from tests.server.livesite import endpoint_site_env, register_endpoint_models
from tests.server.livesite import serving as libra_serving

WORDS = 30


class SlowStreamHandler(StreamingHandler):
    """Streams WORDS words, one every 40 ms (about 1.2 s an answer), as an OpenAI-style server does."""

    def do_POST(self) -> None:
        self.read_body()
        self.stream((f"w{i} " for i in range(WORDS)), 0.04)


def _first_events(http: httpx.Client, url: str) -> list:
    """Reads until the first delta, then hangs up (the connection closes with the context)."""
    lines = []
    with http.stream("GET", url) as response:
        for line in response.iter_lines():
            lines.append(line)
            if line.startswith("data: ") and len(lines) > 1 and lines[-2] == "event: delta":
                break
    return parse_sse("\n".join(lines) + "\n\n")


async def test_a_client_that_hangs_up_mid_stream_resumes_where_it_left(runtime, db_url, tmp_path) -> None:
    with serving(SlowStreamHandler) as base_url:
        await register_endpoint_models(runtime, base_url, ("slow-one", "slow-two"))
        await asyncio.to_thread(_hang_up_and_resume, endpoint_site_env(db_url, tmp_path))


def _hang_up_and_resume(env: dict[str, str]) -> None:
    with libra_serving(env, "--no-worker") as (site, _), httpx.Client(base_url=f"{site}/api/v1", timeout=30) as http:
        battle = http.post("/battles", json={"prompt": "Count for me.", "stream": True}).json()
        url = f"/battles/{battle['id']}/stream"
        first = _first_events(http, url)
        rest = parse_sse(http.get(url, headers={"Last-Event-ID": first[-1].id}).text)
        events = first + rest
        assert [e.id for e in events] == [f"1.0.{n}" for n in range(1, len(events) + 1)]  # nothing lost or twice
        stored = http.get(f"/battles/{battle['id']}").json()
        assert stored["status"] == "ready" and events[-1].data == {"status": "ready"}
        for answer in stored["answers"]:
            streamed = "".join(e.data["text"] for e in events if e.event == "delta" and e.data["side"] == answer["side"])
            assert streamed == answer["text"] and answer["text"].split() == [f"w{i}" for i in range(WORDS)]
        assert len(first) < len(events) - 4  # the hang-up really came mid-stream


class LongStreamHandler(StreamingHandler):
    """Streams 400 words, one every 40 ms (about 16 s): streams stay open for the whole test."""

    def do_POST(self) -> None:
        self.read_body()
        self.stream((f"w{i} " for i in range(400)), 0.04)


async def test_a_client_may_hold_only_so_many_streams_open_and_gets_its_slot_back_when_one_ends(
        runtime, db_url, tmp_path) -> None:
    with serving(LongStreamHandler) as base_url:
        await register_endpoint_models(runtime, base_url, ("long-one", "long-two"))
        # Two streams a client, and the address (both clients here share 127.0.0.1) no more than that.
        env = endpoint_site_env(db_url, tmp_path, LIBRA_ARENA_STREAMS_PER_CLIENT="2", LIBRA_RATE_ADDRESS_FACTOR="1")
        await asyncio.to_thread(_hold_streams, env)


def _hold_streams(env: dict[str, str]) -> None:
    with libra_serving(env, "--no-worker") as (site, _), \
            httpx.Client(base_url=f"{site}/api/v1", timeout=30) as visitor, \
            httpx.Client(base_url=f"{site}/api/v1", timeout=30) as neighbour, contextlib.ExitStack() as held:
        battle = visitor.post("/battles", json={"prompt": "Count for me.", "stream": True}).json()
        url = f"/battles/{battle['id']}/stream"
        streams = [held.enter_context(visitor.stream("GET", url)) for _ in range(2)]
        assert [s.status_code for s in streams] == [200, 200]
        for refused in (visitor.get(url), neighbour.get(url)):  # the client's cap, then the address's
            assert refused.status_code == 429, refused.text
            assert refused.json()["error"]["code"] == "too_many_streams" and refused.headers["retry-after"]
        streams[0].close()  # hangs up: the server gives the slot back as it notices
        for _ in range(100):
            with neighbour.stream("GET", url) as again:
                if again.status_code == 200:
                    assert next(again.iter_lines()).startswith(("id:", "event:", ":"))
                    break
            time.sleep(0.1)
        else:
            raise AssertionError("the slot of a closed stream never came back")
        # A stream refused with 404 gives its slot back at once: many in a row never reach the cap (one
        # stream is still held, the cap is two). The first may still meet the neighbour's closing stream.
        unknown = f"/battles/{uuid.uuid4()}/stream"
        for _ in range(100):
            if visitor.get(unknown).status_code == 404:
                break
            time.sleep(0.1)
        assert [visitor.get(unknown).status_code for _ in range(5)] == [404] * 5
