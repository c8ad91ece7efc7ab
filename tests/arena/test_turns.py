"""Multi-turn battles, regeneration and expiry, through the API on the real embedded Postgres.

Each model's double answers with what it was shown, so a test can see which history each side got.
"""

import uuid
from dataclasses import replace
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from arena import jobs
from arena.models import Battle, BattleStatus, BattleTurn
from core.db import transaction, utcnow
from core.settings import Settings
from tests.arena.streaming_doubles import (
    DoublePoolForTests,
    StreamingDoubleForTests,
    add_models,
    client_for,
    parse_sse,
    side_text,
)


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, arena_max_turns=3,
                    arena_read_words_per_s=1e6)


def echo(name: str, leak_on_turn: int | None = None):
    """``<name>#<turn> heard [<this side's earlier answers>]``; names its model on ``leak_on_turn``."""
    def script(messages) -> list[str]:
        turn = sum(m.role == "user" for m in messages)
        if turn == leak_on_turn:
            return [f"I am {name.title()} Double, trained by Hugging Face."]
        heard = " / ".join(m.content for m in messages if m.role == "assistant")
        return [f"{name}#{turn} heard [", heard, "]"]
    return script


@pytest.fixture
async def models(runtime) -> None:
    await add_models(runtime, alpha="Hugging Face", beta="Google")


def echoes(**kw) -> DoublePoolForTests:
    return DoublePoolForTests(alpha=StreamingDoubleForTests(echo("alpha", **kw)),
                              beta=StreamingDoubleForTests(echo("beta")))


async def _battle(http) -> dict:
    created = await http.post("/api/v1/battles", json={"prompt": "first"})
    assert created.status_code == 201 and created.json()["status"] == "ready", created.text
    return created.json()


async def test_each_side_sees_its_own_history(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http:
        battle = await _battle(http)
        first = {a["side"]: a["text"] for a in battle["answers"]}
        second = await http.post(f"/api/v1/battles/{battle['id']}/turns", json={"prompt": "second"})
        assert second.status_code == 201, second.text
        body = second.json()
    assert body["status"] == "ready" and body["prompt"] == "first"
    assert [(t["turn"], t["prompt"]) for t in body["turns"]] == [(1, "first"), (2, "second")]
    assert body["answers"] == body["turns"][1]["answers"]
    for answer in body["answers"]:
        name = first[answer["side"]].split("#")[0]
        assert answer["text"] == f"{name}#2 heard [{first[answer['side']]}]"  # its own answer, not the other's


async def test_turns_stop_at_the_limit_and_after_the_vote(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        for prompt in ("two", "three"):
            assert (await http.post(f"{url}/turns", json={"prompt": prompt})).status_code == 201
        fourth = await http.post(f"{url}/turns", json={"prompt": "four"})
        assert fourth.status_code == 409 and "limit is 3" in fourth.json()["error"]["message"]
        assert (await http.post(f"{url}/vote", json={"helpfulness": "tie"})).status_code == 200
        assert (await http.post(f"{url}/regenerate")).status_code == 409
        assert (await http.post(f"{url}/turns", json={"prompt": "x"})).status_code == 409
        assert (await http.post(f"/api/v1/battles/{uuid.uuid4()}/turns", json={"prompt": "x"})).status_code == 404
        assert (await http.post(f"{url}/turns", json={"prompt": " "})).status_code == 422
        assert (await http.post(f"{url}/turns", json={"prompt": "x", "extra": 1})).status_code == 422


async def test_only_the_creator_may_continue_or_regenerate(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http, client_for(runtime, echoes()) as stranger:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        for response in (await stranger.post(f"{url}/turns", json={"prompt": "mine now"}),
                         await stranger.post(f"{url}/regenerate")):
            assert response.status_code == 403 and response.json()["error"]["code"] == "not_your_battle"
        assert (await http.post(f"{url}/turns", json={"prompt": "still mine"})).status_code == 201


async def test_regenerate_replaces_the_last_turn_and_counts_it(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        await http.post(f"{url}/turns", json={"prompt": "second"})
        again = await http.post(f"{url}/regenerate", json={"stream": True})
        assert again.status_code == 200 and again.json()["status"] == "generating"
        events = parse_sse((await http.get(f"{url}/stream")).text)
        assert {e.id.rsplit(".", 1)[0] for e in events} == {"2.1"} and events[-1].data == {"status": "ready"}
        body = (await http.get(url)).json()
    assert len(body["turns"]) == 2 and [a["text"] for a in body["answers"]] == [side_text(events, s) for s in "ab"]
    async with transaction(runtime.sessions) as session:
        turns = list(await session.scalars(select(BattleTurn).order_by(BattleTurn.turn)))
    assert [(t.turn, t.regenerations) for t in turns] == [(1, 0), (2, 1)]
    assert all(t.finished_at is not None for t in turns)


async def test_a_later_turn_streams_with_its_own_ids(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        first_ids = [e.id for e in parse_sse((await http.get(f"{url}/stream")).text)]
        turn = await http.post(f"{url}/turns", json={"prompt": "second", "stream": True})
        assert turn.status_code == 201 and turn.json()["status"] == "generating"
        # A reader still holding turn 1's last id gets all of turn 2.
        events = parse_sse((await http.get(f"{url}/stream", headers={"Last-Event-ID": first_ids[-1]})).text)
    assert events[0].id == "2.0.1" and events[-1].data == {"status": "ready"}
    assert all("#2 heard [" in side_text(events, s) for s in "ab")


async def test_a_leak_in_any_turn_flags_the_battle(runtime, models) -> None:
    async with client_for(runtime, echoes(leak_on_turn=2)) as http:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        await http.post(f"{url}/turns", json={"prompt": "who are you?"})
        voted = (await http.post(f"{url}/vote", json={"helpfulness": "a"})).json()
    assert voted["vote_counted"] is False and voted["vote_excluded_reason"] == "identity_leak"
    async with transaction(runtime.sessions) as session:
        assert (await session.get(Battle, uuid.UUID(battle["id"]))).identity_leak is True


async def test_turns_count_against_the_battle_rate_limit(runtime, models) -> None:
    limited = replace(runtime, settings=runtime.settings.model_copy(update={"rate_battles": 2}))
    async with client_for(limited, echoes()) as http:
        battle = await _battle(http)
        url = f"/api/v1/battles/{battle['id']}"
        assert (await http.post(f"{url}/turns", json={"prompt": "second"})).status_code == 201
        assert (await http.post(f"{url}/regenerate")).status_code == 429


async def test_an_unvoted_battle_expires_and_cannot_be_voted_on(runtime, models) -> None:
    async with client_for(runtime, echoes()) as http:
        old, fresh = await _battle(http), await _battle(http)
        async with transaction(runtime.sessions) as session:
            await session.execute(update(Battle).where(Battle.id == uuid.UUID(old["id"]))
                                  .values(answered_at=utcnow() - timedelta(minutes=61)))
        context = SimpleNamespace(additional_context={"sessions": runtime.sessions, "settings": runtime.settings})
        assert await jobs.fail_stale_battles(context, 0) == 1
        statuses = {b["id"]: (await http.get(f"/api/v1/battles/{b['id']}")).json()["status"] for b in (old, fresh)}
        assert statuses == {old["id"]: "expired", fresh["id"]: "ready"}
        vote = await http.post(f"/api/v1/battles/{old['id']}/vote", json={"helpfulness": "a"})
        assert vote.status_code == 409
        assert (await http.post(f"/api/v1/battles/{old['id']}/turns", json={"prompt": "x"})).status_code == 409
        assert (await http.post(f"/api/v1/battles/{fresh['id']}/vote", json={"helpfulness": "a"})).status_code == 200


async def test_vote_window_closed_rule(runtime, models) -> None:
    from arena.service import vote_window_closed

    now = utcnow()
    ready = Battle(status=BattleStatus.ready, answered_at=now - timedelta(minutes=59))
    assert not vote_window_closed(ready, runtime.settings)
    ready.answered_at = now - timedelta(minutes=61)
    assert vote_window_closed(ready, runtime.settings)
    assert vote_window_closed(Battle(status=BattleStatus.expired, answered_at=None), runtime.settings)
    assert not vote_window_closed(Battle(status=BattleStatus.generating, answered_at=None), runtime.settings)


async def test_a_battle_refused_by_the_rate_limit_stores_nothing(runtime, models) -> None:
    # The limit runs alongside the pair draw (arena.service.start_battle's admit): a refusal stores nothing.
    limited = replace(runtime, settings=runtime.settings.model_copy(update={"rate_battles": 1}))
    async with client_for(limited, echoes()) as http:
        await _battle(http)
        refused = await http.post("/api/v1/battles", json={"prompt": "again", "stream": True})
        assert refused.status_code == 429 and refused.headers["Retry-After"]
    async with transaction(runtime.sessions) as session:
        assert len(list(await session.scalars(select(Battle)))) == 1
    assert runtime.hub.running == 0
