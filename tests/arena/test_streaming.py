"""Streamed battles through the API on the real embedded Postgres: events labelled only A and B,
resumable by Last-Event-ID, replayed from the database by a process that did not generate them.

The model text comes from streaming doubles (tests/arena/streaming_doubles.py) read through the real
GenerationStream; the arena's pacing, storage and SSE are the real code.
"""

import asyncio
import uuid

import pytest
from sqlalchemy import select

from arena import answering, service, streaming
from arena.models import Battle, BattleAnswer, BattleStatus
from arena.schemas import BattleIn
from arena.service import Arena
from arena.streaming import SideFrames, StreamHub, TurnFeed
from core.db import transaction
from core.registry.models import Contestant
from core.settings import Settings
from inference.errors import BackendUnavailable
from tests.arena.streaming_doubles import (
    DoublePoolForTests,
    StreamingDoubleForTests,
    add_models,
    client_for,
    fixed,
    parse_sse,
    side_text,
)

TEXT = "Plants make their food from light, water and air."
SECRET_ERROR = "connect to http://10.9.8.7:8000/v1 failed; /srv/models/secret-gemma.gguf"


@pytest.fixture
def settings() -> Settings:
    # Votes here come at once; a fast reader speed keeps the reading-time rule from holding them.
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, battle_timeout_s=1.0,
                    arena_read_words_per_s=1e6)


@pytest.fixture
async def models(runtime) -> None:
    await add_models(runtime, chars="Hugging Face", words="Google")


def both(**kw) -> DoublePoolForTests:
    return DoublePoolForTests(chars=StreamingDoubleForTests(fixed(TEXT, "char"), **kw),
                              words=StreamingDoubleForTests(fixed(TEXT, "word"), **kw))


async def _streamed(http, body: dict | None = None) -> tuple[dict, list]:
    created = await http.post("/api/v1/battles", json=body or {"prompt": "How do plants eat?", "stream": True})
    assert created.status_code == 201, created.text
    stream = await http.get(f"/api/v1/battles/{created.json()['id']}/stream")
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    return created.json(), parse_sse(stream.text)


async def test_stream_mode_answers_at_once_then_streams_both_sides(runtime, models) -> None:
    async with client_for(runtime, both()) as http:
        created, events = await _streamed(http)
        assert created["status"] == "generating" and created["answers"] == [] and created["model_a"] is None
        assert [e.id for e in events] == [f"1.0.{n}" for n in range(1, len(events) + 1)]
        assert events[-1].event == "done" and events[-1].data == {"status": "ready"}
        assert {(e.event, e.data["side"]) for e in events if e.event == "end"} == {("end", "a"), ("end", "b")}
        stored = (await http.get(f"/api/v1/battles/{created['id']}")).json()
        assert stored["status"] == "ready"
        assert [side_text(events, s) for s in "ab"] == [a["text"] for a in stored["answers"]] == [TEXT, TEXT]
        voted = await http.post(f"/api/v1/battles/{created['id']}/vote", json={"helpfulness": "a"})
        assert voted.status_code == 200 and voted.json()["vote_counted"] is True


async def test_two_sides_on_one_embedded_model_use_two_copies_of_it(runtime, models) -> None:
    """Both doubles here are SmolLM2 with a system prompt: side b gets a copy of its own
    (inference.BackendPool.copies_for), or it would show nothing until side a had finished."""
    pool = both()
    async with client_for(runtime, pool) as http:
        _, events = await _streamed(http)
        assert events[-1].data == {"status": "ready"}
    assert sorted(copy for _, copy in pool.copies) == [0, 1]
    assert {prompt for prompt, _ in pool.copies} == {"chars", "words"}


def test_only_two_sides_on_one_embedded_engine_get_copies() -> None:
    def model(**config) -> Contestant:
        return Contestant(config=config)

    smol = {"kind": "llamacpp", "model": "smollm2-135m-instruct"}
    http = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}
    assert answering.engine_copies([model(**smol), model(**smol, correction_pass=True)]) == [0, 1]
    assert answering.engine_copies([model(**smol), model(kind="llamacpp", model="gemma3-270m")]) == [0, 0]
    assert answering.engine_copies([model(**http), model(**http)]) == [0, 0]
    assert answering.engine_copies([model(**smol), model(**smol, n_ctx=1)]) == [0, 0]  # fails in answer()


async def test_a_reader_resumes_after_last_event_id(runtime, models) -> None:
    async with client_for(runtime, both()) as http:
        created, events = await _streamed(http)
        url = f"/api/v1/battles/{created['id']}/stream"
        rest = parse_sse((await http.get(url, headers={"Last-Event-ID": events[1].id})).text)
        assert rest == events[2:]
        # An id of no generation of this battle (or garbage) starts from the beginning.
        assert parse_sse((await http.get(url, headers={"Last-Event-ID": "9.9.1"})).text) == events
        assert parse_sse((await http.get(url, headers={"Last-Event-ID": "x"})).text) == events


async def test_unknown_battle_stream_is_404(runtime, models) -> None:
    async with client_for(runtime, both()) as http:
        assert (await http.get(f"/api/v1/battles/{uuid.uuid4()}/stream")).status_code == 404
        assert (await http.get("/api/v1/battles/nope/stream")).status_code == 422


async def test_a_failing_side_ends_with_a_fixed_error_and_blocks_the_vote(runtime, models) -> None:
    pool = DoublePoolForTests(chars=StreamingDoubleForTests(fixed(TEXT, "char")),
                              words=StreamingDoubleForTests(fixed("Half an ans", "char"),
                                                            fail=BackendUnavailable(SECRET_ERROR)))
    async with client_for(runtime, pool) as http:
        created, events = await _streamed(http)
        [error] = [e for e in events if e.event == "error"]
        assert error.data["message"] == "the model is unavailable right now"
        assert events[-1].data == {"status": "failed"}
        everything = " ".join(str(e.data) for e in events)
        assert "10.9.8.7" not in everything and "secret" not in everything and ".gguf" not in everything
        vote = await http.post(f"/api/v1/battles/{created['id']}/vote", json={"helpfulness": "a"})
        assert vote.status_code == 409


async def test_a_side_that_times_out_ends_with_an_error_event(runtime, models) -> None:
    pool = DoublePoolForTests(chars=StreamingDoubleForTests(fixed(TEXT, "char")),
                              words=StreamingDoubleForTests(fixed("Still thinking", "word"), hang=True))
    async with client_for(runtime, pool) as http:
        created, events = await _streamed(http)  # battle_timeout_s is 1 s here
        errors = [e.data["message"] for e in events if e.event == "error"]
        assert errors == ["the model took too long to answer"] and events[-1].data == {"status": "failed"}
        assert (await http.get(f"/api/v1/battles/{created['id']}")).json()["status"] == "failed"


async def test_nothing_before_the_vote_names_a_model(runtime, models) -> None:
    async with client_for(runtime, both()) as http:
        created = await http.post("/api/v1/battles", json={"prompt": "Who are you?", "stream": True})
        body = (await http.get(f"/api/v1/battles/{created.json()['id']}/stream")).text
        shown = (created.text + body + (await http.get(f"/api/v1/battles/{created.json()['id']}")).text).lower()
    for name in ("chars", "words", "double", "hugging", "google", "smollm", "llamacpp"):
        assert name not in shown


async def test_chunking_by_characters_or_words_is_framed_the_same(runtime, models, monkeypatch) -> None:
    # One backend sends 50 one-character chunks, the other 9 words; a relay would send 50 and 9 frames.
    # A long tick so that both whole answers surely fall in the first one on a busy machine.
    monkeypatch.setattr(streaming, "TICK_S", 1.0)
    async with client_for(runtime, both()) as http:
        _, events = await _streamed(http)
    frames = {s: [e.data["text"] for e in events if e.event == "delta" and e.data["side"] == s] for s in "ab"}
    assert frames["a"] == frames["b"] == [TEXT]
    shape = [(e.event, e.data.get("side")) for e in events]
    assert shape == [("delta", "a"), ("end", "a"), ("delta", "b"), ("end", "b"), ("done", None)]


def test_a_tick_sends_each_sides_gathered_text_as_one_frame() -> None:
    feed, a, b = TurnFeed("1.0"), SideFrames("a"), SideFrames("b")
    for character in "Hello there":
        a.push(character)
    for word in ("Hello ", "there"):
        b.push(word)
    for side in (a, b):
        side.flush(feed)
    for word in ("general ", "Kenobi"):
        a.push(word)
    b.push("general Kenobi")
    for side in (a, b):
        side.flush(feed)
    assert [(e.data["side"], e.data["text"]) for e in feed.events] == [
        ("a", "Hello there"), ("b", "Hello there"), ("a", "general Kenobi"), ("b", "general Kenobi")]


async def test_finished_feeds_are_forgotten_by_a_sweep_at_most_every_few_seconds(monkeypatch) -> None:
    """A launch looks for finished feeds past KEEP_FINISHED_S only when SWEEP_EVERY_S has passed since the
    last look: a scan of every feed at every launch grew with the battles of the last five minutes."""
    monkeypatch.setattr(streaming, "KEEP_FINISHED_S", 0.0)
    monkeypatch.setattr(streaming, "SWEEP_EVERY_S", 3600.0)
    hub = StreamHub()

    async def done(feed: TurnFeed) -> None:
        feed.finish("ready")

    first, second, third = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await hub.launch(first, "1.0", done).task  # the hub's first launch sweeps (nothing to forget yet)
    await hub.launch(second, "1.0", done).task
    assert hub.feed(first) is not None  # finished and past its time, but no sweep is due
    monkeypatch.setattr(streaming, "SWEEP_EVERY_S", 0.0)
    hub.launch(third, "1.0", done)
    assert hub.feed(first) is None and hub.feed(second) is None and hub.feed(third) is not None
    await hub.aclose()


async def test_another_process_replays_a_finished_turn_from_the_database(runtime, models) -> None:
    async with client_for(runtime, both()) as http:
        created, live = await _streamed(http)
    elsewhere = Arena(runtime.sessions, StreamHub(), both(), runtime.battle_limits, runtime.settings)
    replayed = parse_sse(b"".join([chunk async for chunk in
                                   await service.stream_events(elsewhere, uuid.UUID(created["id"]))]).decode())
    assert [side_text(replayed, s) for s in "ab"] == [TEXT, TEXT]
    assert [e.event for e in replayed] == ["delta", "end", "delta", "end", "done"]
    assert replayed[-1].data == live[-1].data == {"status": "ready"}


async def test_a_reader_elsewhere_waits_for_the_turn_then_replays_it(runtime, models) -> None:
    gate = asyncio.Event()
    here = Arena(runtime.sessions, StreamHub(), both(gate=gate), runtime.battle_limits, runtime.settings)
    elsewhere = Arena(runtime.sessions, StreamHub(), both(), runtime.battle_limits, runtime.settings)
    created = await service.start_battle(here, BattleIn(prompt="hi"), wait=False)
    reader = asyncio.create_task(_collect(await service.stream_events(elsewhere, created.id)))
    await asyncio.sleep(0.6)  # a couple of polls find the turn still generating
    assert not reader.done()
    gate.set()
    events = parse_sse((await asyncio.wait_for(reader, 30)).decode())
    assert [side_text(events, s) for s in "ab"] == [TEXT, TEXT] and events[-1].data == {"status": "ready"}
    await here.hub.aclose()


async def _collect(chunks) -> bytes:
    return b"".join([chunk async for chunk in chunks])


async def test_a_client_that_leaves_does_not_stop_the_generation(runtime, models) -> None:
    gate = asyncio.Event()
    hub = StreamHub()
    arena = Arena(runtime.sessions, hub, both(gate=gate), runtime.battle_limits, runtime.settings)
    waiting = asyncio.create_task(service.start_battle(arena, BattleIn(prompt="hi")))
    battle_id = None
    while battle_id is None:  # until the battle is stored: a request that leaves before stores nothing
        await asyncio.sleep(0.01)
        async with transaction(runtime.sessions) as session:
            battle_id = await session.scalar(select(Battle.id))
    waiting.cancel()  # the plain client hung up while both sides were thinking
    with pytest.raises(asyncio.CancelledError):
        await waiting
    gate.set()
    await asyncio.wait_for(hub.feed(battle_id).finished.wait(), 30)
    async with transaction(runtime.sessions) as session:
        battle = await session.get(Battle, battle_id)
        answers = list(await session.scalars(select(BattleAnswer).where(BattleAnswer.battle_id == battle_id)))
    assert battle.status == BattleStatus.ready and battle.answered_at is not None
    assert [a.text for a in sorted(answers, key=lambda a: a.side)] == [TEXT, TEXT]
    assert all(a.ttft_s is not None and a.ttft_s >= 0 for a in answers)
    await hub.aclose()
