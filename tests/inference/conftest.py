"""Fixtures of the inference tests: real loopback servers and a scripted backend.

The scripted backend is a real `Backend` implementation whose output is
fixed in advance; serving it through the real OpenAI-compatible app lets the
HTTP client be tested over real sockets without model inference.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from inference.errors import InferenceError
from inference.protocol import BaseBackend
from inference.stream import StreamEnd, StreamEvent
from inference.types import Message, SamplingParams


class ScriptedBackend(BaseBackend):
    """Streams fixed chunks; can wait between them or fail after some."""

    def __init__(
        self,
        chunks: tuple[str, ...] = ("Hello", ", ", "world", "!"),
        *,
        delay_s: float = 0.0,
        fail_after: int | None = None,
        error: InferenceError | None = None,
    ) -> None:
        self.chunks = chunks
        self.delay_s = delay_s
        self.fail_after = fail_after
        self.error = error
        self.seen: list[tuple[list[Message], SamplingParams]] = []
        self.active = 0
        self.peak = 0
        self.closed_early = 0

    async def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        self.seen.append((messages, params))
        self.active += 1
        self.peak = max(self.peak, self.active)
        finished = False
        try:
            if self.error is not None and self.fail_after is None:
                raise self.error
            for index, chunk in enumerate(self.chunks[: params.max_tokens]):
                if self.fail_after is not None and index == self.fail_after:
                    raise self.error or RuntimeError("scripted crash")
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                yield chunk
            finish = "length" if params.max_tokens < len(self.chunks) else "stop"
            finished = True
            yield StreamEnd(
                finish,
                prompt_tokens=len(messages) * 3,
                completion_tokens=min(params.max_tokens, len(self.chunks)),
            )
        finally:
            self.active -= 1
            if not finished:
                self.closed_early += 1


@contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Run an ASGI app with uvicorn on a free loopback port; yield its /v1 base URL."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port() -> int:
    """A loopback port with nothing listening on it (for connection-refused tests)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "model: runs real llama.cpp inference on an embedded model (slow)")


@pytest.fixture(scope="session")
def model_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One folder for assembled GGUF files across the session (Gemma's join takes a second)."""
    return tmp_path_factory.mktemp("libra-models")


@pytest.fixture
def scripted() -> type[ScriptedBackend]:
    """The ScriptedBackend class, to build with the behaviour a test needs."""
    return ScriptedBackend


@pytest.fixture
def serve() -> Any:
    """`with serve(app) as base_url:` runs the app on a loopback port."""
    return serve_app


@pytest.fixture
def closed_port() -> int:
    return free_port()
