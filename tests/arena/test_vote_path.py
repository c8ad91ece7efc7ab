"""The vote path through the real service on the embedded Postgres: idempotency keys (a retry never
counts twice, a vote whose answer was lost is findable), one vote per battle, bad keys."""

import asyncio

import pytest

from core.settings import Settings
from tests.arena.votes_support import BASE, battle, counted, seed, stored_votes, visitor, vote, vote_settings


@pytest.fixture
def settings() -> Settings:
    return vote_settings()


async def test_a_retry_with_the_same_key_returns_the_stored_answer_and_counts_once(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battle_id = await battle(http)
        first = await vote(http, battle_id, "vote-1", helpfulness="b", safety="a")
        retried = await vote(http, battle_id, "vote-1", helpfulness="b", safety="a")
        assert first.status_code == retried.status_code == 200
        assert retried.json() == first.json() and first.json()["model_a"] is not None
        # Without a key the battle's one-vote rule still holds.
        again = await vote(http, battle_id)
        assert again.status_code == 409 and again.json()["error"]["code"] == "already_voted"
    assert len(await stored_votes(runtime)) == 1
    assert await counted(runtime) == 1 and await counted(runtime, "safety") == 1


async def test_the_same_key_on_another_battle_is_409_with_a_clear_message(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        first, second = await battle(http), await battle(http)
        assert (await vote(http, first, "k")).status_code == 200
        reused = await vote(http, second, "k")
        assert reused.status_code == 409 and reused.json()["error"]["code"] == "idempotency_key_reused"
        assert "new key" in reused.json()["error"]["message"]
        assert (await vote(http, second, "k2")).status_code == 200
    assert [v.idempotency_key for v in await stored_votes(runtime)] == ["k", "k2"]


async def test_a_vote_whose_answer_was_lost_is_findable_and_a_retry_never_doubles_it(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        # The answer was lost on the way back: the vote is stored, findable, and a retry gets its answer.
        stored_id = await battle(http)
        lost = await vote(http, stored_id, "lost-answer", helpfulness="b")
        found = await http.get(f"{BASE}/votes/lost-answer")
        assert found.status_code == 200 and found.json()["battle_id"] == stored_id
        assert found.json()["stored"] is True and found.json()["counted"] is True
        retried = await vote(http, stored_id, "lost-answer", helpfulness="b")
        assert retried.status_code == 200 and retried.json() == lost.json()
        # The request was lost on the way out: nothing is stored under the key, and the retry votes.
        unsent_id = await battle(http)
        assert (await http.get(f"{BASE}/votes/lost-request")).status_code == 404
        assert (await vote(http, unsent_id, "lost-request")).status_code == 200
        assert (await http.get(f"{BASE}/votes/lost-request")).json()["battle_id"] == unsent_id
    stored = await stored_votes(runtime)
    assert len(stored) == 2 and await counted(runtime) == 2


async def test_concurrent_retries_store_one_vote_and_all_get_its_answer(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battle_id = await battle(http)
        answers = await asyncio.gather(*(vote(http, battle_id, "same") for _ in range(6)))
    assert {a.status_code for a in answers} == {200} and len({a.text for a in answers}) == 1
    assert len(await stored_votes(runtime)) == 1 and await counted(runtime) == 1


async def test_a_key_is_findable_only_by_the_session_that_sent_it(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as owner, visitor(runtime) as stranger:
        await vote(owner, await battle(owner), "mine")
        assert (await owner.get(f"{BASE}/votes/mine")).status_code == 200
        assert (await stranger.get(f"{BASE}/votes/mine")).status_code == 404
        assert (await owner.get(f"{BASE}/votes/never-sent")).status_code == 404


@pytest.mark.parametrize("key", ["", " ", "x" * 81, b"caf\xc3\xa9", "tab\there"])
async def test_a_bad_idempotency_key_is_422_and_leaves_the_battle_votable(runtime, key) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battle_id = await battle(http)
        bad = await http.post(f"{BASE}/battles/{battle_id}/vote", json={"helpfulness": "a"},
                              headers={"Idempotency-Key": key})
        assert bad.status_code == 422 and "idempotency" in bad.json()["error"]["field"].lower(), bad.text
        assert (await vote(http, battle_id, "x" * 80)).status_code == 200


async def test_votes_on_unknown_unfinished_or_failed_battles_are_refused(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        missing = await vote(http, "00000000-0000-4000-8000-000000000000")
        assert missing.status_code == 404
        assert (await http.post(f"{BASE}/battles/not-a-uuid/vote", json={"helpfulness": "a"})).status_code == 422


async def test_a_counted_vote_takes_three_round_trips_on_its_connection(runtime, tmp_path, monkeypatch) -> None:
    """Counted with libpq's own protocol trace: every round trip ends with one Sync (extended protocol)
    or one simple Query. Three: the rate-limit hits; BEGIN and the claim; the write and COMMIT. And the
    server sends no notice (each would also be a WARNING line in its log)."""
    from contextlib import asynccontextmanager

    from arena import vote_store

    traces, opened = [], vote_store.connection

    @asynccontextmanager
    async def traced(engine):  # noqa: ANN001, ANN202
        async with opened(engine) as conn:
            path = tmp_path / f"trace-{len(traces)}.txt"
            with path.open("w") as sink:
                conn.pgconn.trace(sink.fileno())
                try:
                    yield conn
                finally:
                    conn.pgconn.untrace()
            traces.append(path)

    await seed(runtime)
    async with visitor(runtime) as http:
        first, second = await battle(http), await battle(http)
        assert (await vote(http, first, "warm-up")).status_code == 200  # the window's first hit may also purge
        monkeypatch.setattr(vote_store, "connection", traced)
        answered = await vote(http, second, "measured", helpfulness="a", safety="b")
    assert answered.status_code == 200 and answered.json()["vote_counted"] is True
    lines = traces[-1].read_text().splitlines()
    trips = [line for line in lines if "\tF\t" in line and ("\tSync" in line or "\tQuery\t" in line)]
    assert len(trips) == 3, "\n".join(lines)
    # A notice is a line in the Postgres log too: on the hottest path, one per batch would fill it.
    assert not [line for line in lines if "NoticeResponse" in line], "\n".join(lines)
    assert await counted(runtime) == 2
