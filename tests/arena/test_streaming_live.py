"""A streamed battle over real HTTP: a real `libra serve` subprocess, a real OpenAI-compatible endpoint
that streams slowly, and a client that hangs up mid-stream, then reconnects with Last-Event-ID."""

import asyncio

import httpx

from core.db import transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from server.contestants import register
from tests.arena.streaming_doubles import parse_sse
from tests.http_stub import StreamingHandler, serving
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
        async with transaction(runtime.sessions) as session:
            for slug in ("slow-one", "slow-two"):
                config = {"kind": "openai", "base_url": base_url, "model": slug, "max_retries": 0}
                await register(session, ContestantIn(slug=slug, display_name=slug, organisation="t", config=config),
                               ContestantStatus.active, actor="test")
        env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_HOME": str(tmp_path), "LIBRA_EGRESS_ALLOW": "127.0.0.1/32",
               "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false"}
        await asyncio.to_thread(_hang_up_and_resume, env)


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
