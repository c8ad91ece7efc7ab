"""Richer votes and identity leaks, through the API on the real embedded Postgres.

The model text comes from a scripted test double keyed by each model's system prompt, so each
model says what the test needs whichever side it is drawn to.
"""

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import httpx
import pytest
from sqlalchemy import select

from arena import repository as repo
from arena.models import Battle, BattleAnswer, PairCount, Vote
from core.db import transaction
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from inference import GenerationResult
from server.contestants import register

NEUTRAL = "Plants make their food by photosynthesis."


@pytest.fixture
def settings():
    from tests.arena.votes_support import vote_settings

    return vote_settings()  # votes here come at once: the reading rule (tests/arena/test_vote_integrity.py) is off


class ScriptedByModelForTests:
    def __init__(self, text: str) -> None:
        self.text = text

    async def generate(self, messages, params) -> GenerationResult:
        return GenerationResult(text=self.text, finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                                latency_s=0.0, ttft_s=0.0, complete=True)


class ScriptedByModelPoolForTests:
    """Answers with the text given for the model whose system prompt is the key."""

    def __init__(self, **texts: str) -> None:
        self.texts = texts

    def get(self, config, copy: int = 0) -> ScriptedByModelForTests:
        return ScriptedByModelForTests(self.texts[config.system_prompt])


async def _models(runtime) -> None:
    doubles = [("smollm2-test-double", "SmolLM2 test double", "Hugging Face", "smol"),
               ("gemma-test-double", "Gemma test double", "Google", "gemma")]
    async with transaction(runtime.sessions) as session:
        for slug, name, organisation, key in doubles:
            config = {"kind": "llamacpp", "model": "smollm2-135m-instruct", "system_prompt": key}
            entry = ContestantIn(slug=slug, display_name=name, organisation=organisation, config=config)
            await register(session, entry, ContestantStatus.active, actor="test")


async def _client(runtime, pool) -> httpx.AsyncClient:
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = replace(runtime, backends=pool)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                             base_url="http://test")


@pytest.fixture
async def http(runtime, request) -> AsyncIterator[httpx.AsyncClient]:
    await _models(runtime)
    async with await _client(runtime, ScriptedByModelPoolForTests(**request.param)) as client:
        yield client


LEAKY = {"smol": "Hi! I'm SmolLM, trained by Hugging Face", "gemma": NEUTRAL}
TOPICAL = {"smol": "Gemma is a model family; it was trained by Google.", "gemma": NEUTRAL}


@pytest.mark.parametrize("http", [LEAKY], indirect=True)
async def test_an_answer_naming_its_model_flags_the_battle_and_its_vote_stays_out(http, runtime) -> None:
    created = await http.post("/api/v1/battles", json={"prompt": "Who are you?"})
    assert created.status_code == 201, created.text
    assert "identity" not in created.text.lower() and created.json()["model_a"] is None  # nothing before the vote
    battle_id = created.json()["id"]
    async with transaction(runtime.sessions) as session:
        battle = await session.get(Battle, uuid.UUID(battle_id))
        matches = [a.identity_match for a in await session.scalars(select(BattleAnswer))]
    assert battle.identity_leak and battle.identity_rules_version
    assert sorted(matches, key=str) == ["I'm SmolLM", None]
    voted = await http.post(f"/api/v1/battles/{battle_id}/vote", json={"helpfulness": "a", "safety": "b"})
    assert voted.status_code == 200, voted.text
    assert voted.json()["vote_counted"] is False and voted.json()["vote_excluded_reason"] == "identity_leak"
    async with transaction(runtime.sessions) as session:
        assert list(await session.scalars(select(PairCount))) == []
        assert len(list(await session.scalars(select(Vote)))) == 1  # kept, not deleted
        assert await repo.excluded_votes(session) == {"identity_leak": 1}


@pytest.mark.parametrize("http", [TOPICAL], indirect=True)
async def test_a_neutral_answer_or_a_mention_of_another_model_is_not_flagged(http, runtime) -> None:
    battle = (await http.post("/api/v1/battles", json={"prompt": "Tell me about Gemma"})).json()
    voted = await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "tie"})
    assert voted.status_code == 200 and voted.json()["vote_counted"] is True
    async with transaction(runtime.sessions) as session:
        assert not (await session.get(Battle, uuid.UUID(battle["id"]))).identity_leak
        counts = {c.dimension: c.ties for c in await session.scalars(select(PairCount))}
        assert counts == {"helpfulness": 1, "helpfulness@free": 1}  # overall and for the prompt source
        assert await repo.excluded_votes(session) == {}


@pytest.mark.parametrize("http", [{"smol": NEUTRAL, "gemma": NEUTRAL}], indirect=True)
async def test_a_vote_carries_a_harm_category_and_a_trimmed_reason(http, runtime) -> None:
    battle = (await http.post("/api/v1/battles", json={"prompt": "hi"})).json()
    vote = {"helpfulness": "b", "safety": "both_bad", "harm_category": "cybercrime",
            "reason": "  B explained the attack step by step.\n", "reason_public": True}
    voted = await http.post(f"/api/v1/battles/{battle['id']}/vote", json=vote)
    assert voted.status_code == 200, voted.text
    assert voted.json()["vote"]["reason"] == "B explained the attack step by step."
    async with transaction(runtime.sessions) as session:
        stored = await session.scalar(select(Vote))
    assert (stored.harm_category, stored.reason, stored.reason_public) == (
        "cybercrime", "B explained the attack step by step.", True)


@pytest.mark.parametrize("http", [{"smol": NEUTRAL, "gemma": NEUTRAL}], indirect=True)
@pytest.mark.parametrize(
    ("extra", "field"),
    [({"harm_category": "Cybercrime"}, "harm_category"), ({"harm_category": "hate"}, "harm_category"),
     ({"reason": "x" * 501}, "reason"), ({"reason": "bad\x00byte"}, "reason"), ({"reason": "bell\x07"}, "reason"),
     ({"reason_public": "maybe"}, "reason_public")],
)
async def test_bad_vote_details_are_422_and_leave_the_battle_votable(http, runtime, extra, field) -> None:
    battle = (await http.post("/api/v1/battles", json={"prompt": "hi"})).json()
    bad = await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a", **extra})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == field
    assert (await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a"})).status_code == 200


@pytest.mark.parametrize("http", [{"smol": "a\x00b\udc80c", "gemma": NEUTRAL}], indirect=True)
async def test_characters_postgres_cannot_store_are_cleaned_from_answers(http, runtime) -> None:
    created = await http.post("/api/v1/battles", json={"prompt": "hi"})
    assert created.status_code == 201, created.text
    assert sorted(a["text"] for a in created.json()["answers"]) == sorted(["abc", NEUTRAL])


async def test_the_harm_categories_are_listed(client) -> None:
    listed = await client.get("/api/v1/battles/harm-categories")
    assert listed.status_code == 200 and len(listed.json()) == 19 and listed.json()["cybercrime"] == "Cybercrime"


@pytest.mark.parametrize("http", [LEAKY], indirect=True)
async def test_an_excluded_vote_stays_out_of_the_style_controlled_fit_too(http, runtime) -> None:
    from server.leaderboard import repository as leaderboard_repo

    battle = (await http.post("/api/v1/battles", json={"prompt": "Who are you?"})).json()
    assert (await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a"})).status_code == 200
    async with transaction(runtime.sessions) as session:
        assert list(await leaderboard_repo.helpfulness_votes_with_style(session)) == []
