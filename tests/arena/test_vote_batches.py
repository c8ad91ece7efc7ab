"""Votes sent together share batches (arena.votes, core.batching) through the real service on the
embedded Postgres: every vote is stored once, the caps, the burst rule and the rate limits count the
batch's earlier votes as if each had been committed alone, and a batch whose write fails sends its
votes through the single path without counting their hits twice."""

import asyncio
from contextlib import AsyncExitStack

import psycopg
import pytest
from sqlalchemy import text

from arena import vote_store
from core.db import libpq_url, transaction
from core.settings import Settings
from tests.arena.votes_support import battle, counted, flags, seed, stored_votes, visitor, vote, vote_settings


@pytest.fixture
def settings(request) -> Settings:
    return vote_settings(**getattr(request, "param", {}))


def _with(overrides: dict) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("settings", [overrides], indirect=True)


@pytest.fixture
def claimed(monkeypatch) -> list[int]:
    """The size of each batch's claim (a spy around the real statement). The first batch waits a moment
    before its claim, so that the votes sent with it all gather behind it, whatever the machine's load."""
    sizes, real = [], vote_store.claim_many

    async def spy(conn, asks, *args):
        sizes.append(len(asks))
        if len(sizes) == 1:
            await asyncio.sleep(0.2)
        return await real(conn, asks, *args)

    monkeypatch.setattr(vote_store, "claim_many", spy)
    return sizes


async def _voters_with_battles(runtime, stack: AsyncExitStack, count: int, address: str = "203.0.113.7"):
    """``count`` browsers at one address, each with a battle of its own, ready to vote."""
    clients = [await stack.enter_async_context(visitor(runtime, address)) for _ in range(count)]
    return [(http, await battle(http)) for http in clients]


async def _session_hits(runtime) -> list[int]:
    async with transaction(runtime.sessions) as session:
        rows = await session.execute(text("SELECT count FROM rate_counters WHERE bucket LIKE 'votes:session:%'"))
        return sorted(count for (count,) in rows)


async def test_votes_sent_together_share_batches_and_each_is_stored_and_counted_once(runtime, claimed) -> None:
    await seed(runtime)
    async with AsyncExitStack() as stack:
        ready = await _voters_with_battles(runtime, stack, 12)
        answers = await asyncio.gather(*(vote(http, b, f"key-{i}") for i, (http, b) in enumerate(ready)))
    assert [a.status_code for a in answers] == [200] * 12
    assert all(a.json()["vote_counted"] and a.json()["model_a"] for a in answers)
    assert sorted(a.json()["id"] for a in answers) == sorted(b for _, b in ready)
    assert max(claimed) > 1 and sum(claimed) == 12, claimed  # shared batches, each vote claimed once
    assert len(await stored_votes(runtime)) == 12 and await counted(runtime) == 12
    assert await _session_hits(runtime) == [1] * 12


async def test_one_session_voting_on_several_battles_at_once_gets_one_vote_per_batch(runtime, claimed) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battles = [await battle(http) for _ in range(4)]
        answers = await asyncio.gather(*(vote(http, b) for b in battles))
    assert [a.status_code for a in answers] == [200] * 4
    assert claimed == [1, 1, 1, 1]  # the session's facts (its votes this hour, its record) stay exact
    assert await counted(runtime) == 4 and await _session_hits(runtime) == [4]


@_with({"arena_votes_per_address_hour": 3})
async def test_an_address_cap_holds_inside_one_batch(runtime, claimed) -> None:
    await seed(runtime)
    async with AsyncExitStack() as stack:
        ready = await _voters_with_battles(runtime, stack, 6)
        answers = await asyncio.gather(*(vote(http, b) for http, b in ready))
    assert max(claimed) > 3, claimed  # the cap was reached inside a batch
    assert sorted(a.status_code for a in answers) == [200] * 3 + [429] * 3
    assert all("address" in a.json()["error"]["message"] for a in answers if a.status_code == 429)
    assert len(await stored_votes(runtime)) == 3


@_with({"arena_burst_votes": 3, "arena_burst_window_s": 300})
async def test_the_burst_rule_counts_the_earlier_votes_of_its_batch(runtime, claimed) -> None:
    await seed(runtime)
    async with AsyncExitStack() as stack:
        ready = await _voters_with_battles(runtime, stack, 6)
        answers = await asyncio.gather(*(vote(http, b) for http, b in ready))
    assert max(claimed) > 3, claimed
    assert sorted(str(a.json()["vote_excluded_reason"]) for a in answers) == ["None"] * 3 + ["review"] * 3
    # Each counts the range's votes up to the threshold (3), then adds itself.
    assert [f.detail["votes"] for f in await flags(runtime) if f.rule == "burst"] == [4, 4, 4]
    assert await counted(runtime) == 3


async def test_a_batch_whose_write_fails_sends_its_votes_through_the_single_path(runtime, db_url,
                                                                                 monkeypatch) -> None:
    """Another process stores a vote under one of the batch's keys between its claims and its write: the
    batch rolls back, and each of its votes is decided again alone (the other one is stored, the raced
    key gets 409) with its rate-limit hits counted once."""
    await seed(runtime)
    real = vote_store.claim_many
    async with AsyncExitStack() as stack:
        (first, first_battle), (second, second_battle), (third, third_battle) = await _voters_with_battles(
            runtime, stack, 3)
        elsewhere = await battle(third)

        async def racing(conn, asks, *args):
            claims = await real(conn, asks, *args)
            if "raced" in {ask.key for ask in asks} and len(asks) > 1:
                async with await psycopg.AsyncConnection.connect(libpq_url(db_url), autocommit=True) as other:
                    await other.execute("INSERT INTO votes (battle_id, helpfulness, created_at, idempotency_key) "
                                        "VALUES (%s, 'a', now(), 'raced')", (elsewhere,))
            return claims

        monkeypatch.setattr(vote_store, "claim_many", racing)
        alone, kept, raced = await asyncio.gather(vote(third, third_battle, "first-alone"),
                                                  vote(first, first_battle, "kept"),
                                                  vote(second, second_battle, "raced"))
    assert alone.status_code == 200 and kept.status_code == 200 and kept.json()["vote_counted"] is True
    assert raced.status_code == 409 and raced.json()["error"]["code"] == "idempotency_key_reused"
    keys = sorted(v.idempotency_key for v in await stored_votes(runtime))
    assert keys == ["first-alone", "kept", "raced"]  # the raced key holds the other process's vote
    assert await counted(runtime) == 2 and await _session_hits(runtime) == [1, 1, 1]


async def test_a_bucket_named_several_times_counts_each_hit_in_order(runtime) -> None:
    from core.db import driver_connection, engine_of
    from core.keys.repository import count_hits

    async with driver_connection(engine_of(runtime.sessions)) as conn:
        first = await count_hits(conn, ["x", "x", "y", "x"], 3600)
        second = await count_hits(conn, ["y", "x"], 3600)
    assert [hit.count for hit in first] == [1, 2, 1, 3] and [hit.count for hit in second] == [2, 4]
