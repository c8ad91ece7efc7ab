"""Vote integrity through the real service on the embedded Postgres: only the battle's own session votes,
caps per session and address, the anomaly rules that hold a vote for review, and the admins' queue."""

import uuid

import pytest
from sqlalchemy import text

from arena import vote_store
from arena.integrity import RULES_VERSION, VoteFacts, VoterIdentity, flags_for, identify
from core.db import engine_of
from core.settings import Settings
from tests.arena.votes_support import (
    BASE,
    admin_headers,
    answered_ago,
    battle,
    counted,
    flags,
    seed,
    stored_battle,
    stored_votes,
    visitor,
    vote,
    vote_settings,
)


@pytest.fixture
def settings(request) -> Settings:
    return vote_settings(**getattr(request, "param", {}))


# Slow enough that a vote cast straight after its battle is always too fast, however loaded the machine: the
# stub answers' words need minutes at this speed, and a patient vote comes 50 minutes after its answers.
SLOW_READERS = {"arena_read_words_per_s": 0.2}
PATIENT_S = 3000


def _flags(client_settings: dict) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("settings", [client_settings], indirect=True)


async def test_only_the_session_that_started_a_battle_may_vote_on_it(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as owner, visitor(runtime) as stranger:
        battle_id = await battle(owner)
        refused = await vote(stranger, battle_id)
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_your_battle"
        assert (await vote(owner, battle_id)).status_code == 200
    stored = await stored_votes(runtime)
    assert len(stored) == 1 and stored[0].session_hash == (await stored_battle(runtime, battle_id)).creator_hash


async def test_only_salted_hashes_of_the_voter_are_stored(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime, "203.0.113.7") as http:
        assert (await vote(http, await battle(http))).status_code == 200
        session_id = http.cookies["libra_session"].split(".")[0]
    stored = (await stored_votes(runtime))[0]
    hashes = (stored.session_hash, stored.address_hash, stored.network_hash)
    assert all(len(h) == 64 for h in hashes) and len(set(hashes)) == 3
    assert not any(raw in h for h in hashes for raw in ("203.0.113", session_id))
    assert identify(b"another salt", session_id, "203.0.113.7").session_hash != stored.session_hash


def test_identify_takes_an_ipv6_client_as_its_64_and_its_range_as_its_48() -> None:
    salt, session = b"salt", "s"
    one = identify(salt, session, "2001:db8:7:1::a")
    assert identify(salt, session, "2001:DB8:7:1:ffff::9") == one  # the same /64, written another way
    other = identify(salt, session, "2001:db8:7:2::a")
    assert other.address_hash != one.address_hash and other.network_hash == one.network_hash
    assert identify(salt, session, "2001:db8:8:1::a").network_hash != one.network_hash
    assert identify(salt, session, "fe80::1%eth0") == identify(salt, session, "fe80::2")  # scope left out
    v4 = identify(salt, session, "203.0.113.7")
    assert identify(salt, session, "::ffff:203.0.113.7") == v4
    assert identify(salt, session, "203.0.113.8").network_hash == v4.network_hash != one.network_hash
    assert identify(salt, session, "unknown").address_hash not in (v4.address_hash, one.address_hash)


@_flags({"arena_votes_per_session_hour": 2, "arena_votes_per_address_hour": 3})
async def test_caps_per_session_and_per_address_per_hour_give_429_with_retry_after(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime, "198.51.100.1") as first, visitor(runtime, "198.51.100.1") as second:
        battles = [await battle(first) for _ in range(3)]
        assert [(await vote(first, b)).status_code for b in battles[:2]] == [200, 200]
        capped = await vote(first, battles[2])
        assert capped.status_code == 429 and capped.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(capped.headers["retry-after"]) <= 3600 and "session" in capped.json()["error"]["message"]
        # Another session at the same address: one more vote, then the address's cap holds.
        others = [await battle(second) for _ in range(2)]
        assert (await vote(second, others[0])).status_code == 200
        by_address = await vote(second, others[1])
        assert by_address.status_code == 429 and "address" in by_address.json()["error"]["message"]
    assert len(await stored_votes(runtime)) == 3


@_flags({"arena_votes_per_session_hour": 10, "arena_votes_per_address_hour": 2})
async def test_an_ipv6_client_is_its_64_and_an_ipv4_peer_in_ipv6_form_its_ipv4_address(runtime) -> None:
    """Devices change their IPv6 address within their /64 at will (privacy addresses): a client that drops its
    cookie and its address each time is still one address there. A dual-stack socket gives an IPv4 peer as
    ::ffff:a.b.c.d, which is that IPv4 address, not one range shared by every IPv4 visitor."""
    await seed(runtime)
    for addresses in (["2001:db8:7:1::a", "2001:db8:7:1:9f3e:1:2:3", "2001:DB8:7:1:ffff:ffff:ffff:ffff"],
                      ["198.51.100.20", "::ffff:198.51.100.20", "::ffff:c633:6414"]):
        answers = []
        for address in addresses:
            async with visitor(runtime, address) as http:  # a new session cookie each time
                answers.append(await vote(http, await battle(http)))
        assert [a.status_code for a in answers] == [200, 200, 429], addresses
        assert "address" in answers[2].json()["error"]["message"]
    async with visitor(runtime, "2001:db8:7:2::a") as http:  # the next /64: another client, in the same /48
        assert (await vote(http, await battle(http))).status_code == 200
    async with visitor(runtime, "198.51.100.21") as http:
        assert (await vote(http, await battle(http))).status_code == 200
    stored = await stored_votes(runtime)
    assert len(stored) == 6
    assert len({v.address_hash for v in stored}) == 4 and len({v.network_hash for v in stored}) == 2


@_flags(SLOW_READERS)
async def test_a_vote_faster_than_reading_allows_is_held_for_review(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        hasty = await battle(http)
        held = await vote(http, hasty)
        assert held.status_code == 200, held.text
        assert held.json()["vote_counted"] is False and held.json()["vote_excluded_reason"] == "review"
        patient = await battle(http)
        await answered_ago(runtime, patient, PATIENT_S)
        assert (await vote(http, patient)).json()["vote_counted"] is True
    stored = await stored_votes(runtime)
    assert [v.excluded_reason for v in stored] == ["review", None]
    assert stored[0].read_s is not None and stored[0].read_s < 60 and stored[1].read_s >= PATIENT_S
    (flag,) = await flags(runtime)
    assert flag.rule == "too_fast" and flag.detail["words"] > 0 and flag.detail["needed_s"] > flag.detail["read_s"]
    assert await counted(runtime) == 1 and await counted(runtime, "helpfulness@free") == 1


@_flags(SLOW_READERS)
async def test_the_reading_rule_takes_the_answers_stored_word_counts_or_counts_texts_stored_without_them(
        runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battles = [await battle(http) for _ in range(2)]
        async with runtime.sessions() as session, session.begin():
            texts = {row[0]: row[1] for row in await session.execute(text(
                "SELECT battle_id::text || side, text FROM battle_answers"))}
            # The first battle's answers say 400 words each; the second's were stored without a count.
            await session.execute(text("UPDATE battle_answers SET style_length = CASE WHEN battle_id = "
                                       "CAST(:first AS uuid) THEN 400 ELSE 0 END"), {"first": battles[0]})
        for battle_id in battles:
            assert (await vote(http, battle_id)).status_code == 200
    words = [flag.detail["words"] for flag in await flags(runtime)]
    in_texts = sum(len(texts[battles[1] + side].split()) for side in "ab")  # the stub's one-line answers
    assert words == [800, in_texts] and in_texts > 0


@_flags({"arena_one_sided_votes": 4})
async def test_a_session_that_always_picks_one_model_is_held_for_review(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        target, rulings = None, []
        for _ in range(14):
            battle_id = await battle(http)
            stored = await stored_battle(runtime, battle_id)
            target = target or stored.model_a_id
            side = "a" if stored.model_a_id == target else "b" if stored.model_b_id == target else None
            answer = await vote(http, battle_id, helpfulness=side or "tie", safety=side or "tie")
            if side is not None:
                rulings.append(answer.json()["vote_excluded_reason"])
    assert len(rulings) >= 4, "the pair draws never gave the target model four battles"
    assert rulings[:3] == [None, None, None] and set(rulings[3:]) == {"review"}
    one_sided = [f for f in await flags(runtime) if f.rule == "one_sided"]
    assert len(one_sided) == len(rulings) - 3 and {f.detail["model_id"] for f in one_sided} == {target}
    assert one_sided[0].detail == {"model_id": target, "battles": 4, "picked": 4}


@_flags({"arena_burst_votes": 3, "arena_burst_window_s": 300})
async def test_a_burst_from_one_address_range_is_held_but_another_range_is_not(runtime) -> None:
    await seed(runtime)
    answers = []
    for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4", "192.0.2.5", "198.51.100.9"):
        async with visitor(runtime, address) as http:
            answers.append((await vote(http, await battle(http))).json()["vote_excluded_reason"])
            last_battle = await battle(http)
    assert answers == [None, None, None, "review", "review", None]
    bursts = await flags(runtime)
    assert [(f.rule, f.detail) for f in bursts] == [("burst", {"votes": 4, "window_s": 300})] * 2
    # The claim counts the range's votes up to the threshold (3), not all five: a busy range costs each
    # claim no more than that.
    network = next(v.network_hash for v in await stored_votes(runtime) if v.id == bursts[0].vote_id)
    ask = vote_store.Ask(uuid.UUID(last_battle), None, VoterIdentity("s", "a", network))
    async with vote_store.connection(engine_of(runtime.sessions)) as conn:
        [claim] = await vote_store.claim_many(conn, [ask], runtime.settings)
    assert claim.row.network_votes == 3


@_flags(SLOW_READERS)
async def test_admins_list_the_queue_then_approve_or_reject_and_nothing_is_deleted(runtime) -> None:
    await seed(runtime)
    admin = await admin_headers(runtime)
    async with visitor(runtime) as http:
        first, second = await battle(http), await battle(http)
        await vote(http, first, helpfulness="a", safety="b")
        await vote(http, second, helpfulness="tie")
        assert (await http.get(f"{BASE}/admin/arena/review")).status_code == 401
        queue = await http.get(f"{BASE}/admin/arena/review", headers=admin)
        assert queue.status_code == 200, queue.text
        held = queue.json()
        assert [h["battle_id"] for h in held] == [second, first]
        assert held[1]["flags"][0]["rule"] == "too_fast" and held[1]["model_a"] and held[1]["review"] is None
        assert await counted(runtime) == 0
        approved = await http.post(f"{BASE}/admin/arena/review/{held[1]['vote_id']}", headers=admin,
                                   json={"decision": "approved", "note": "a fast reader"})
        assert approved.status_code == 200 and approved.json()["review"]["decision"] == "approved"
        assert await counted(runtime) == 1 and await counted(runtime, "safety@free") == 1
        rejected = await http.post(f"{BASE}/admin/arena/review/{held[0]['vote_id']}", headers=admin,
                                   json={"decision": "rejected"})
        assert rejected.status_code == 200 and await counted(runtime) == 1
        again = await http.post(f"{BASE}/admin/arena/review/{held[0]['vote_id']}", headers=admin,
                                json={"decision": "approved"})
        assert again.status_code == 409 and await counted(runtime) == 1
        bad = await http.post(f"{BASE}/admin/arena/review/{held[0]['vote_id']}", headers=admin,
                              json={"decision": "maybe"})
        assert bad.status_code == 422
        assert (await http.get(f"{BASE}/admin/arena/review", headers=admin)).json() == []
        decided = (await http.get(f"{BASE}/admin/arena/review?state=decided", headers=admin)).json()
        assert [d["review"]["decision"] for d in decided] == ["rejected", "approved"]
        missing = await http.post(f"{BASE}/admin/arena/review/99999", headers=admin, json={"decision": "approved"})
        assert missing.status_code == 404
    assert len(await stored_votes(runtime)) == 2 and len(await flags(runtime)) == 2


async def test_a_vote_not_held_cannot_be_reviewed(runtime) -> None:
    await seed(runtime)
    admin = await admin_headers(runtime)
    async with visitor(runtime) as http:
        await vote(http, await battle(http))
        vote_id = (await stored_votes(runtime))[0].id
        answer = await http.post(f"{BASE}/admin/arena/review/{vote_id}", headers=admin, json={"decision": "approved"})
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "not_held"


async def test_a_battle_past_its_vote_window_cannot_be_voted_on(runtime) -> None:
    await seed(runtime)
    async with visitor(runtime) as http:
        battle_id = await battle(http)
        await answered_ago(runtime, battle_id, 2 * 3600)
        late = await vote(http, battle_id)
    assert late.status_code == 409 and late.json()["error"]["code"] in {"vote_expired", "not_votable"}
    assert await stored_votes(runtime) == []


def test_the_rules_flag_each_anomaly_with_its_evidence() -> None:
    settings = Settings(_env_file=None, database_url=None, arena_one_sided_votes=12, arena_burst_votes=60)
    ordinary = VoteFacts(words=150, read_s=30.0, network_votes=10, sided={1: (20, 10)}, picks=frozenset({1}))
    assert flags_for(ordinary, settings) == [] and RULES_VERSION == "integrity-1"
    rushed = VoteFacts(words=150, read_s=2.0, network_votes=60, sided={1: (11, 10)}, picks=frozenset({1}))
    assert [f.rule for f in flags_for(rushed, settings)] == ["too_fast", "one_sided", "burst"]
    # Ten of eleven earlier battles picked model 1; a vote against it is not one-sided.
    against = VoteFacts(words=0, read_s=None, network_votes=0, sided={1: (11, 10)}, picks=frozenset({2}))
    assert flags_for(against, settings) == []
