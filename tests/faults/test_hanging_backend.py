"""A model endpoint that accepts the connection and never answers: each battle fails cleanly when the
battle timeout is up, and after LIBRA_ARENA_FAILURES_TO_PAUSE failures in a row the model is paused.

Real parts: an OpenAI-style backend over real TCP to a socket that never answers, the real pool, the
app. tests/arena/test_streaming.py covers a hanging side with a streaming double (the SSE events);
tests/arena/test_model_health.py covers the pause with a model whose key is missing. Here a real
connection hangs, which is what a stuck vLLM or a blackholed host does.
"""

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import httpx
import pytest

from arena import health
from core.db import transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from inference import BackendPool
from server.contestants import register

FAILURES_TO_PAUSE = 3


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, database_url=None, battle_timeout_s=1.0, arena_failures_to_pause=FAILURES_TO_PAUSE,
                    egress_allow="127.0.0.1/32", arena_read_words_per_s=1e6)


@contextmanager
def silent_endpoint() -> Iterator[str]:
    """Accepts connections, reads nothing, answers nothing; yields an OpenAI-style base URL."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []
    stopped = threading.Event()

    def accept() -> None:
        while not stopped.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    finally:
        stopped.set()
        listener.close()
        for connection in held:
            connection.close()


async def test_battles_against_a_hanging_backend_fail_at_the_timeout_then_the_models_pause(runtime) -> None:
    from server.app import create_app

    pool = BackendPool(egress_allow="127.0.0.1/32")
    with silent_endpoint() as base_url:
        async with transaction(runtime.sessions) as session:
            for slug in ("silent-one", "silent-two"):
                config = {"kind": "openai", "base_url": base_url, "model": slug, "max_retries": 0}
                await register(session, ContestantIn(slug=slug, display_name=slug, organisation="t", config=config),
                               ContestantStatus.active, actor="test")
        app = create_app(runtime.settings, "unused://", with_worker=False)
        app.state.runtime = replace(runtime, backends=pool)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as http:
                battles = [await http.post("/api/v1/battles", json={"prompt": "Are you there?"})
                           for _ in range(FAILURES_TO_PAUSE)]
                after = await http.post("/api/v1/battles", json={"prompt": "Anyone?"})
        finally:
            await pool.aclose()
    for battle in battles:
        assert battle.status_code == 201 and battle.json()["status"] == "failed"
        assert [a["error"] for a in battle.json()["answers"]] == ["the model took too long to answer"] * 2
    async with transaction(runtime.sessions) as session:
        paused = await health.paused_models(session)
    assert sorted((p.slug, p.failures_in_row) for p in paused) == [("silent-one", 3), ("silent-two", 3)]
    assert after.status_code == 503 and after.json()["error"]["code"] == "no_pair"  # nothing left to draw
