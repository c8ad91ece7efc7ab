"""A side that cannot answer fails cleanly: the battle ends `failed`, never 500, never left `generating`."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from arena import service
from arena.models import Battle, BattleAnswer, BattleStatus
from arena.schemas import BattleIn
from arena.service import Arena
from arena.streaming import StreamHub
from core.db import transaction
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from inference import GenerationResult
from server.contestants import register

# A closed local port: nothing is ever reached, and the name must not leak into an answer.
ENDPOINT = "http://127.0.0.1:9/v1"


async def _add(runtime, slug: str, config: dict, *, validated: bool = True) -> None:
    async with transaction(runtime.sessions) as session:
        if validated:
            entry = ContestantIn(slug=slug, display_name=slug, organisation="t", config=config)
            await register(session, entry, ContestantStatus.active, actor="test")
        else:  # a row written before today's validation rules: the arena must still cope with it
            await registry.add(
                session,
                slug=slug,
                display_name=slug,
                organisation="t",
                description=None,
                backend_kind=config.get("kind", "?"),
                config=config,
                status=ContestantStatus.active,
            )


async def _battle_rows(runtime) -> list[Battle]:
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(Battle)))


def _no_leak(body: dict) -> None:
    errors = " ".join(a["error"] or "" for a in body["answers"])
    assert "127.0.0.1" not in errors and "LIBRA_TEST_UNSET_KEY" not in errors and "/v1" not in errors


async def test_a_model_whose_key_is_missing_fails_its_side(client, runtime, monkeypatch) -> None:
    monkeypatch.delenv("LIBRA_TEST_UNSET_KEY", raising=False)
    keyless = {"kind": "openai", "base_url": ENDPOINT, "model": "m", "api_key_env": "LIBRA_TEST_UNSET_KEY"}
    await _add(runtime, "keyless-one", keyless)
    await _add(runtime, "keyless-two", {**keyless, "model": "n"})
    response = await client.post("/api/v1/battles", json={"prompt": "hello"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "failed"
    assert [a["status"] for a in body["answers"]] == ["error", "error"]
    assert {a["error"] for a in body["answers"]} == {"the model is unavailable right now"}
    _no_leak(body)
    assert [b.status for b in await _battle_rows(runtime)] == [BattleStatus.failed]


async def test_a_stored_config_that_no_longer_validates_fails_its_side(client, runtime) -> None:
    await _add(runtime, "broken", {"kind": "openai", "model": "m"}, validated=False)  # no base_url
    await _add(
        runtime,
        "dead",
        {"kind": "openai", "base_url": ENDPOINT, "model": "m", "max_retries": 0, "timeout_s": 2},
    )
    response = await client.post("/api/v1/battles", json={"prompt": "hello"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "failed" and all(a["status"] == "error" and a["error"] for a in body["answers"])
    assert "the model's configuration is not valid" in {a["error"] for a in body["answers"]}
    _no_leak(body)
    assert [b.status for b in await _battle_rows(runtime)] == [BattleStatus.failed]


class ScriptedTextForTests:
    """Answers with a fixed text, or hangs when the text is None."""

    def __init__(self, text: str | None) -> None:
        self.text = text

    async def generate(self, messages, params) -> GenerationResult:
        if self.text is None:
            await asyncio.Event().wait()
        return GenerationResult(
            text=self.text,
            finish_reason="stop",
            prompt_tokens=1,
            completion_tokens=1,
            latency_s=0.0,
            ttft_s=0.0,
            complete=True,
        )


class ScriptedPoolForTests:
    def __init__(self, *texts: str | None) -> None:
        self.texts = list(texts)

    def get(self, config, copy: int = 0) -> ScriptedTextForTests:
        return ScriptedTextForTests(self.texts.pop(0))


@pytest.fixture
async def two_models(runtime) -> None:
    for slug in ("one", "two"):
        await _add(runtime, slug, {"kind": "llamacpp", "model": "smollm2-135m-instruct"})


async def _client_with(runtime, pool) -> AsyncIterator[httpx.AsyncClient]:
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = replace(runtime, backends=pool)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_nul_characters_are_cleaned_out_of_answers(runtime, two_models) -> None:
    async with await _client_with(runtime, ScriptedPoolForTests("a\x00nswer\x00", "\x00\x00")) as http:
        response = await http.post("/api/v1/battles", json={"prompt": "hello"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "failed"  # one side said nothing but NULs: an empty answer
    assert [(a["status"], a["text"]) for a in body["answers"]] == [("ok", "answer"), ("error", "")]
    async with transaction(runtime.sessions) as session:
        texts = sorted(a.text for a in await session.scalars(select(BattleAnswer)))
    assert texts == ["", "answer"]


async def test_a_prompt_with_nul_is_refused_before_anything_is_written(client, runtime, two_models) -> None:
    response = await client.post("/api/v1/battles", json={"prompt": "he\x00llo"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "prompt"
    assert await _battle_rows(runtime) == []


async def test_a_shutdown_during_generation_leaves_the_battle_failed(runtime, two_models) -> None:
    hub = StreamHub()
    arena = Arena(runtime.sessions, hub, ScriptedPoolForTests(None, None), runtime.battle_limits, runtime.settings)
    created = await service.start_battle(arena, BattleIn(prompt="hello"), wait=False)
    assert created.status == BattleStatus.generating and created.answers == []
    feed = hub.feed(created.id)
    await hub.aclose()  # what close_runtime does at exit
    [battle] = await _battle_rows(runtime)
    assert battle.status == BattleStatus.failed and battle.finished_at is not None
    assert feed.finished.is_set() and feed.events[-1].data == {"status": "failed"}
    with pytest.raises(LibraError) as refused:  # nothing starts on a closed hub
        await service.start_battle(arena, BattleIn(prompt="again"))
    assert refused.value.status == 503
