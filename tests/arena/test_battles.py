"""Battles end to end through the API on a real database (model text is canned: these tests are
about the arena's rules, not about what a model says)."""

import asyncio
import uuid

import psycopg
import pytest
from sqlalchemy import select

from arena.models import Battle, BattleStatus, PairCount
from core.db import libpq_url, transaction
from core.registry.models import Contestant, ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from server.contestants import register
from server.seed import seed_defaults


@pytest.fixture
def settings() -> Settings:
    # Votes here come at once, faster than anyone reads: the reading-time rule would hold them for review.
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, arena_read_words_per_s=1e6)


@pytest.fixture
async def seeded(runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


async def test_battle_hides_names_until_the_vote_then_reveals(client, seeded) -> None:
    created = await client.post("/api/v1/battles", json={"prompt": "How do plants make food?"})
    assert created.status_code == 201, created.text
    battle = created.json()
    assert battle["status"] == "ready" and battle["model_a"] is None
    assert [a["side"] for a in battle["answers"]] == ["a", "b"]
    assert all(a["text"] for a in battle["answers"])
    voted = await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a", "safety": "tie"})
    assert voted.status_code == 200
    body = voted.json()
    assert body["model_a"]["slug"] != body["model_b"]["slug"]
    assert body["vote"] == {"helpfulness": "a", "safety": "tie", "harm_category": None, "reason": None,
                            "reason_public": False}
    assert body["vote_counted"] is True and body["vote_excluded_reason"] is None
    second = await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "b"})
    assert second.status_code == 409


async def test_vote_updates_pair_counts_in_the_same_transaction(client, runtime, seeded) -> None:
    battle = (await client.post("/api/v1/battles", json={"prompt": "hi"})).json()
    await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a", "safety": "both_bad"})
    async with transaction(runtime.sessions) as session:
        stored = await session.get(Battle, uuid.UUID(battle["id"]))
        counts = {c.dimension: c for c in await session.scalars(select(PairCount))}
    winner_is_lo = stored.model_a_id < stored.model_b_id
    helpful = counts["helpfulness"]
    assert (helpful.lo_wins, helpful.hi_wins) == ((1, 0) if winner_is_lo else (0, 1))
    assert counts["safety"].both_bad == 1 and counts["safety"].lo_wins == 0


async def test_votes_are_append_only_in_the_database(client, seeded, db_url) -> None:
    battle = (await client.post("/api/v1/battles", json={"prompt": "hi"})).json()
    await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "b"})
    with psycopg.connect(libpq_url(db_url)) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("UPDATE votes SET helpfulness = 'a'")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("DELETE FROM votes")


async def test_prompt_limits_and_bad_input(client, seeded) -> None:
    too_long = await client.post("/api/v1/battles", json={"prompt": "x" * 8001})
    assert too_long.status_code == 413 and too_long.json()["error"]["field"] == "prompt"
    assert (await client.post("/api/v1/battles", json={"prompt": ""})).status_code == 422
    assert (await client.post("/api/v1/battles", json={"prompt": "hi", "extra": 1})).status_code == 422
    bad_vote = await client.post(f"/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "maybe"})
    assert bad_vote.status_code == 422 and bad_vote.json()["error"]["field"] == "helpfulness"


async def test_unknown_battle_is_404(client) -> None:
    unknown = uuid.uuid4()
    assert (await client.get(f"/api/v1/battles/{unknown}")).status_code == 404
    assert (await client.post(f"/api/v1/battles/{unknown}/vote", json={"helpfulness": "a"})).status_code == 404
    assert (await client.get("/api/v1/battles/not-a-uuid")).status_code == 422


async def test_arena_needs_two_active_models(client) -> None:
    response = await client.post("/api/v1/battles", json={"prompt": "hi"})
    assert response.status_code == 503 and response.json()["error"]["code"] == "no_pair"


async def test_a_model_that_fails_records_the_failure_and_blocks_the_vote(client, runtime) -> None:
    # Two models whose endpoint is a closed local port: the real HTTP backend fails to connect.
    dead = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0, "timeout_s": 2}
    async with transaction(runtime.sessions) as session:
        for slug in ("dead-one", "dead-two"):
            entry = ContestantIn(slug=slug, display_name=slug, organisation="t", config=dead)
            await register(session, entry, ContestantStatus.active, actor="test")
    battle = (await client.post("/api/v1/battles", json={"prompt": "hello"})).json()
    assert battle["status"] == "failed"
    assert all(a["status"] == "error" and a["error"] for a in battle["answers"])
    vote = await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a"})
    assert vote.status_code == 409
    async with transaction(runtime.sessions) as session:
        assert (await session.get(Battle, uuid.UUID(battle["id"]))).status == BattleStatus.failed


async def test_a_new_battle_answers_as_a_later_read_of_it_does(client, runtime, seeded) -> None:
    """The creating request builds its answer from what it stored, without reading it back: it must be the
    same document a GET returns, for a ready battle and for one whose sides failed."""
    ready = await client.post("/api/v1/battles", json={"prompt": "How do plants make food?"})
    dead = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "max_retries": 0, "timeout_s": 2}
    async with transaction(runtime.sessions) as session:
        for model in await session.scalars(select(Contestant)):
            model.status = ContestantStatus.retired
        for slug in ("dead-one", "dead-two"):
            entry = ContestantIn(slug=slug, display_name=slug, organisation="t", config=dead)
            await register(session, entry, ContestantStatus.active, actor="test")
    failed = await client.post("/api/v1/battles", json={"prompt": "hello"})
    for created, status in ((ready, "ready"), (failed, "failed")):
        assert created.status_code == 201 and created.json()["status"] == status, created.text
        read = await client.get(f"/api/v1/battles/{created.json()['id']}")
        assert read.status_code == 200 and read.json() == created.json()


async def test_more_battles_at_once_than_pooled_connections_all_finish(client, seeded) -> None:
    """24 battles at once against a pool of 10 connections (5 + 5 overflow). Each step of a battle (the
    rate limit, the draw, the insert, the answers) holds one pooled connection and waits for no other:
    a step that held one while waiting for a second deadlocked the pool until its timeout (503s)."""
    answers = await asyncio.gather(*(client.post("/api/v1/battles", json={"prompt": f"hello {i}"})
                                     for i in range(24)))
    assert [a.status_code for a in answers] == [201] * 24, [a.text for a in answers if a.status_code != 201][:2]
    assert {a.json()["status"] for a in answers} == {"ready"}
