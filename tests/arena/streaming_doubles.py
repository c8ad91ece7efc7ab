"""Streaming backend doubles for the arena's streaming and multi-turn tests, and an SSE reader.

Each double streams through the real ``inference.stream.GenerationStream``, so the arena reads it
exactly as it reads a real backend. A model's double is picked by the model's system prompt.
"""

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import httpx

from core.db import transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from inference import InferenceError, Message, SamplingParams
from inference.stream import GenerationStream, StreamEnd
from server.contestants import register

Script = Callable[[Sequence[Message]], list[str]]


class StreamingDoubleForTests:
    """Streams the pieces ``script(messages)`` returns; waits for ``gate`` first; then may fail or hang."""

    def __init__(self, script: Script, *, gate: asyncio.Event | None = None, fail: InferenceError | None = None,
                 hang: bool = False, pause_s: float = 0.0) -> None:
        self.script, self.gate, self.fail, self.hang, self.pause_s = script, gate, fail, hang, pause_s

    def stream(self, messages: Sequence[Message], params: SamplingParams) -> GenerationStream:
        return GenerationStream(self._events(list(messages)))

    async def _events(self, messages: list[Message]) -> AsyncIterator[str | StreamEnd]:
        if self.gate is not None:
            await self.gate.wait()
        pieces = self.script(messages)
        for piece in pieces:
            if self.pause_s:
                await asyncio.sleep(self.pause_s)
            yield piece
        if self.hang:
            await asyncio.Event().wait()
        if self.fail is not None:
            raise self.fail
        yield StreamEnd("stop", 1, len(pieces))

    async def aclose(self) -> None:
        return None


class DoublePoolForTests:
    """Gives each model the double registered under its system prompt."""

    def __init__(self, **doubles: StreamingDoubleForTests) -> None:
        self.doubles = doubles
        self.copies: list[tuple[str, int]] = []  # (system prompt, copy) of each backend asked for

    def get(self, config, copy: int = 0) -> StreamingDoubleForTests:
        self.copies.append((config.system_prompt, copy))
        return self.doubles[config.system_prompt]


def fixed(text: str, by: str = "word") -> Script:
    """The same text whatever was asked, cut into characters or words."""
    pieces = list(text) if by == "char" else [w + " " for w in text.split(" ")[:-1]] + [text.split(" ")[-1]]
    return lambda messages: pieces


async def add_models(runtime, **organisations: str) -> None:
    """One active model per key (its slug, name and system prompt derive from the key)."""
    async with transaction(runtime.sessions) as session:
        for key, organisation in organisations.items():
            config = {"kind": "llamacpp", "model": "smollm2-135m-instruct", "system_prompt": key}
            entry = ContestantIn(slug=f"{key}-double", display_name=f"{key.title()} Double", organisation=organisation,
                                 config=config)
            await register(session, entry, ContestantStatus.active, actor="test")


def client_for(runtime, pool) -> httpx.AsyncClient:
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = replace(runtime, backends=pool)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


@dataclass(frozen=True)
class Sse:
    id: str
    event: str
    data: dict


def parse_sse(body: str) -> list[Sse]:
    events = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append(Sse(fields["id"], fields["event"], json.loads(fields["data"])))
    return events


def side_text(events: list[Sse], side: str) -> str:
    return "".join(e.data["text"] for e in events if e.event == "delta" and e.data["side"] == side)
