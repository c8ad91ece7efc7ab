"""Battle logic: draw an anonymous pair, let both sides answer turn by turn, take one vote, reveal the names.

Each turn is written in two short transactions around its generation (never one held open while
models think): first as 'generating', then with its answers. The generation itself is a task of the
process's ``StreamHub``, not of the request: a client that leaves does not stop it, and a reader
(the same client reconnecting, or a plain request waiting) follows its buffered events; a reader whose
request reached another process follows them through ``arena.relay``. A crash in between leaves a
'generating' row that the housekeeping job marks failed, so nothing stays half-done.
"""

import asyncio
import logging
import secrets
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import answering, health, pairing, prompts, streaming, turn_store
from arena import repository as repo
from arena.answering import storable  # noqa: F401  (kept importable from here)
from arena.identity import IDENTITY_RULES_VERSION
from arena.integrity import VoterIdentity
from arena.models import Battle, BattleAnswer, BattleStatus, BattleTurn
from arena.relay import Relay
from arena.schemas import AnswerOut, BattleIn, BattleOut, RevealedModel, TurnIn, TurnOut, VoteIn
from arena.streaming import SideFrames, StreamHub, TurnFeed, feed_key
from core.db import driver_connection, engine_of, outage_kind, transaction, utcnow
from core.errors import LibraError, conflict
from core.registry import repository as registry
from core.registry.models import Contestant
from core.settings import Settings
from inference import BackendPool, Message
from inference.priority import interactive

log = logging.getLogger(__name__)

POLL_S = 0.25  # how often a reader re-reads a turn that another process generates


@dataclass(frozen=True)
class BattleLimits:
    max_prompt_chars: int
    max_tokens: int
    timeout_s: float


@dataclass(frozen=True)
class Arena:
    """What battles need from the runtime."""

    sessions: async_sessionmaker[AsyncSession]
    hub: StreamHub
    pool: BackendPool
    limits: BattleLimits
    settings: Settings | None = None
    relay: Relay | None = None  # follows generations of other processes live (None: poll the database)


@dataclass(frozen=True)
class Outcome:
    """What a turn's generation stored: the battle's status after it (None: the battle is gone) and the
    answers, side a first. The request that waited builds its answer from this, not from another read."""

    status: BattleStatus | None
    answers: list[BattleAnswer]


@dataclass(eq=False)
class Generation:
    """One turn (or its regeneration) to answer: each side gets its own conversation."""

    battle_id: uuid.UUID
    turn: int
    key: str
    models: tuple[Contestant, Contestant]
    conversations: tuple[list[Message], list[Message]]
    # Set once the turn's rows are committed: answers are stored only after that (a generation may start
    # before the commit, and a fast backend would otherwise finish before its battle exists).
    committed: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: Outcome | None = None  # set once the answers are stored


def vote_window_closed(battle: Battle, settings: Settings | None) -> bool:
    """Whether a battle can no longer be voted on because its answers are older than the vote window."""
    if battle.status == BattleStatus.expired:
        return True
    if battle.answered_at is None:
        return False
    minutes = settings.arena_vote_window_minutes if settings is not None else 60
    return utcnow() - battle.answered_at > timedelta(minutes=minutes)


def _check_length(prompt: str | None, limits: BattleLimits) -> None:
    if prompt is not None and len(prompt) > limits.max_prompt_chars:
        raise LibraError(
            f"the prompt has {len(prompt)} characters; the limit is {limits.max_prompt_chars}",
            status=413, code="prompt_too_long", field="prompt",
        )


Admission = Callable[[], Awaitable[None]]


async def start_battle(arena: Arena, request: BattleIn, voter: VoterIdentity | None = None, *,
                       wait: bool = True, admit: Admission | None = None) -> BattleOut:
    """A new battle; ``wait`` returns once both answers are in, else at once (status 'generating').

    ``admit`` (the caller's rate limit) runs alongside the pair draw and may refuse; nothing is
    stored then. Time before the backends are asked is time to first token for the visitor."""
    _check_length(request.prompt, arena.limits)
    seed = secrets.randbits(31)
    rng = np.random.default_rng(seed)
    prompt = prompts.resolve(request, rng, arena.settings)
    started: list[TurnFeed] = []
    try:
        return await _create(arena, prompt, seed, rng, voter, wait, admit, started)
    except BaseException:
        for feed in started:  # the battle was never stored: its generation stops
            feed.cancel()
        raise


async def _draw(arena: Arena, rng: np.random.Generator) -> pairing.Draw:
    async with driver_connection(engine_of(arena.sessions)) as conn:
        return await pairing.draw_on(conn, rng, arena.settings)


async def _draw_admitted(arena: Arena, rng: np.random.Generator, admit: Admission | None) -> pairing.Draw:
    if admit is None:
        return await _draw(arena, rng)
    # Both finish before either's error is raised: nothing is written unless both succeed. Each holds one
    # pooled connection of its own and nothing else, so that many battles at once cannot deadlock the pool.
    admitted, pair = await asyncio.gather(admit(), _draw(arena, rng), return_exceptions=True)
    for outcome in (admitted, pair):
        if isinstance(outcome, BaseException):
            raise outcome
    return pair


async def _create(arena: Arena, prompt: prompts.ResolvedPrompt, seed: int, rng: np.random.Generator,
                  voter: VoterIdentity | None, wait: bool, admit: Admission | None, started: list[TurnFeed],
                  ) -> BattleOut:
    # Two round trips on the driver's own connection (autocommit): the draw's reads (alongside the rate
    # limit), then the battle with its first turn in one INSERT.
    pair = await _draw_admitted(arena, rng, admit)
    battle = Battle(id=uuid.uuid4(), prompt=prompt.text, status=BattleStatus.generating, model_a_id=pair.model_a.id,
                    model_b_id=pair.model_b.id, sampling_seed=seed, prompt_source=prompt.source,
                    attack=prompt.attack, attack_seed=prompt.attack_seed, pool_item=prompt.pool_item,
                    pairing=pair.record, turns=1,
                    creator_hash=voter.session_hash if voter else None,
                    address_hash=voter.address_hash if voter else None, created_at=utcnow())
    first = [Message("user", prompt.text)]
    job = Generation(battle.id, 1, feed_key(1, 0), (pair.model_a, pair.model_b), (first, list(first)))
    async with driver_connection(engine_of(arena.sessions)) as conn:
        # Started before the row is written, so the backends' first tokens overlap the insert; the answers
        # are stored (under the battle's row lock) long after. Cancelled if the insert fails.
        started.append(feed := _start(arena, job))
        await repo.insert_battle(conn, battle)  # with its first turn; committed
    started.clear()  # committed: from here the generation outlives this request
    job.committed.set()
    return await _finish_launch(arena, job, feed, wait, fresh=battle)


async def add_turn(arena: Arena, battle_id: uuid.UUID, request: TurnIn, voter: VoterIdentity | None, *,
                   wait: bool = True) -> BattleOut:
    """The creator's next prompt, before the vote, up to ``arena_max_turns`` turns."""
    _check_length(request.prompt, arena.limits)
    max_turns = arena.settings.arena_max_turns if arena.settings is not None else 3
    async with transaction(arena.sessions) as session:
        battle = await repo.get_battle(session, battle_id, lock=True)
        _check_continuable(battle, voter, arena.settings)
        if battle.turns >= max_turns:
            raise conflict(f"this battle already has {battle.turns} turns; the limit is {max_turns}")
        rows = await repo.conversation(session, battle.id)
        battle.turns += 1
        battle.status, battle.answered_at = BattleStatus.generating, None
        session.add(BattleTurn(battle_id=battle.id, turn=battle.turns, prompt=request.prompt))
        job = Generation(battle.id, battle.turns, feed_key(battle.turns, 0), await _models(session, battle),
                         _histories(rows, request.prompt))
    return await _launch(arena, job, wait)


async def regenerate(arena: Arena, battle_id: uuid.UUID, voter: VoterIdentity | None, *,
                     wait: bool = True) -> BattleOut:
    """Both answers of the latest turn again (before the vote); counted in the turn's regenerations."""
    async with transaction(arena.sessions) as session:
        battle = await repo.get_battle(session, battle_id, lock=True)
        _check_continuable(battle, voter, arena.settings)
        rows = await repo.conversation(session, battle.id)
        turn = await repo.get_turn(session, battle.id, battle.turns)
        if turn is None:  # a battle from before turns were stored: nothing to regenerate from
            raise conflict("this battle predates turns and cannot be regenerated")
        turn.regenerations, turn.finished_at = turn.regenerations + 1, None
        await repo.delete_answers(session, battle.id, battle.turns)
        battle.status, battle.answered_at = BattleStatus.generating, None
        earlier = [(t, a) for t, a in rows if t.turn < battle.turns]
        job = Generation(battle.id, battle.turns, feed_key(battle.turns, turn.regenerations),
                         await _models(session, battle), _histories(earlier, turn.prompt))
    log.info("arena.turn.regenerated", extra={"battle": str(battle_id), "turn": job.turn})
    return await _launch(arena, job, wait)


def _check_continuable(battle: Battle, voter: VoterIdentity | None, settings: Settings | None) -> None:
    if voter is None or battle.creator_hash is None or battle.creator_hash != voter.session_hash:
        raise LibraError("only the session that started this battle may continue it", status=403,
                         code="not_your_battle")
    if battle.status == BattleStatus.ready and vote_window_closed(battle, settings):
        raise conflict("this battle has expired")
    if battle.status != BattleStatus.ready:
        raise conflict(f"this battle is {battle.status.value}; only a ready battle can go on")


async def _models(session: AsyncSession, battle: Battle) -> tuple[Contestant, Contestant]:
    models = await registry.get_many(session, [battle.model_a_id, battle.model_b_id])
    return models[battle.model_a_id], models[battle.model_b_id]


def _histories(rows: Sequence[tuple[BattleTurn, BattleAnswer | None]], prompt: str
               ) -> tuple[list[Message], list[Message]]:
    """Each side's own conversation: every earlier prompt with that side's answer, then the new prompt."""
    turns: dict[int, str] = {}
    said: dict[tuple[int, str], str] = {}
    for turn, answer in rows:
        turns[turn.turn] = turn.prompt
        if answer is not None:
            said[(turn.turn, answer.side)] = answer.text
    histories = []
    for side in "ab":
        messages = []
        for number, earlier in sorted(turns.items()):
            messages += [Message("user", earlier), Message("assistant", said.get((number, side), ""))]
        histories.append([*messages, Message("user", prompt)])
    return histories[0], histories[1]


def _start(arena: Arena, job: Generation) -> TurnFeed:
    try:
        return arena.hub.launch(job.battle_id, job.key, lambda feed: _generate(arena, job, feed))
    except RuntimeError:  # shutting down: nothing will answer (the transaction rolls back, or the turn fails)
        raise LibraError("the service is shutting down; try again", status=503, code="shutting_down") from None


async def _launch(arena: Arena, job: Generation, wait: bool) -> BattleOut:
    job.committed.set()  # a later turn's rows are committed before its generation starts
    try:
        feed = _start(arena, job)
    except LibraError:
        await _fail(arena.sessions, job.battle_id)
        raise
    return await _finish_launch(arena, job, feed, wait)


async def _finish_launch(arena: Arena, job: Generation, feed: TurnFeed, wait: bool,
                         fresh: Battle | None = None) -> BattleOut:
    if wait:
        await feed.finished.wait()  # a client that leaves stops waiting; the generation goes on
    elif fresh is not None:  # a new battle still generating: nothing to read back yet
        return _first_turn(fresh, BattleStatus.generating, [])
    outcome = job.outcome
    if fresh is not None and outcome is not None and outcome.status is not None:  # as stored, without a read
        return _first_turn(fresh, outcome.status, [AnswerOut(side=side, status=a.status, text=a.text, error=a.error)
                                                   for side, a in zip("ab", outcome.answers, strict=True)])
    return await get(arena.sessions, job.battle_id)


def _first_turn(battle: Battle, status: BattleStatus, answers: list[AnswerOut]) -> BattleOut:
    """A new battle's view (arena.service.view of a one-turn battle) from what this process wrote."""
    return BattleOut(id=battle.id, prompt=battle.prompt, status=status, created_at=battle.created_at,
                     answers=answers, turns=[TurnOut(turn=1, prompt=battle.prompt, answers=list(answers))])


async def _generate(arena: Arena, job: Generation, feed: TurnFeed) -> None:
    sides = [SideFrames("a"), SideFrames("b")]
    copies = answering.engine_copies(job.models)
    try:
        with interactive():  # a shared embedded engine serves the arena before queued evaluation work
            await asyncio.gather(*(_answer(arena, job, i, side, copies[i]) for i, side in enumerate(sides)),
                                 streaming.pace(feed, sides))
        await job.committed.wait()
        status = await _store_answers(arena, job, [side.answer for side in sides])
    except asyncio.CancelledError:  # shutdown: the battle ends failed, never left 'generating'
        await asyncio.shield(_fail(arena.sessions, job.battle_id))
        feed.finish("failed")
        raise
    except Exception as error:  # the database failed us: readers are told, the housekeeping job fails the row later
        where = {"battle": str(job.battle_id), "turn": job.turn}
        kind = outage_kind(error)
        if kind is None:
            log.exception("arena.turn.store_failed", extra=where)
        else:  # an outage is said once per battle in one line; a traceback would add nothing
            log.warning("arena.turn.store_failed", extra={**where, "outage": kind})
        feed.finish("failed")
        return
    feed.finish(status)


async def _answer(arena: Arena, job: Generation, index: int, side: SideFrames, copy: int) -> None:
    limits = arena.limits
    side.answer = await answering.answer(arena.pool, job.models[index], job.conversations[index],
                                         limits.max_tokens, limits.timeout_s, arena.settings, side.push, copy)


async def _fail(sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID) -> None:
    async with transaction(sessions) as session:
        await repo.fail_battle(session, battle_id)


async def _store_answers(arena: Arena, job: Generation, answers: Sequence[BattleAnswer | None]) -> str:
    """Stores the turn's answers, the models' health and the battle's new status in one round trip
    (arena.turn_store); returns the ``done`` status ('ready' or 'failed')."""
    done = [answer for answer in answers if answer is not None]
    assert len(done) == len(answers)  # both side tasks have finished
    now = utcnow()
    async with driver_connection(engine_of(arena.sessions)) as conn:
        stored = await turn_store.store_turn(
            conn, job.battle_id, job.turn, done, [model.id for model in job.models],
            rules_version=IDENTITY_RULES_VERSION, failures_to_pause=health.failures_to_pause(arena.settings), now=now)
    where = {"battle": str(job.battle_id), "turn": job.turn}
    for failure in stored.failures:
        health.log_failure(failure, now)
    leaked = [side for side, answer in zip("ab", done, strict=True) if answer.identity_match]
    if leaked:  # any turn's leak flags the whole battle, for good
        log.info("arena.identity.leak", extra={**where, "sides": leaked})
    status = "ready" if stored.status == BattleStatus.ready else "failed"
    log.info("arena.turn.answered", extra={**where, "status": stored.status.value if stored.status else "gone"})
    job.outcome = Outcome(stored.status, done)
    return status


@dataclass(frozen=True)
class _Sighting:
    """What a reader finds of a battle's latest generation."""

    key: str
    feed: TurnFeed | None  # this process's live feed, or a replay of the stored turn; None: generating elsewhere
    live_here: bool
    recent: bool  # generating, or stored in the last KEEP_FINISHED_S: its generator may still hold the feed


async def stream_events(arena: Arena, battle_id: uuid.UUID, last_event_id: str | None = None
                        ) -> AsyncIterator[bytes]:
    """The latest turn's events as SSE bytes, after ``last_event_id``; an unknown battle is a 404 here,
    before any byte is sent."""
    seen = await _look(arena, battle_id)  # raises the 404
    return _encoded(arena, battle_id, seen, last_event_id)


async def _encoded(arena: Arena, battle_id: uuid.UUID, seen: _Sighting, last_event_id: str | None
                   ) -> AsyncIterator[bytes]:
    had: list[streaming.Event] = []
    if not seen.live_here and seen.recent and arena.relay is not None:
        # Generated by another process (or just was): follow its own feed there, the same bytes as its readers
        # get. If it does not answer, or goes silent, the database has the turn (or soon will).
        after = streaming.resume_after(last_event_id, seen.key)
        remote = await arena.relay.open(battle_id, seen.key, after, _give_up_s(arena.limits))
        if remote is not None:
            try:
                async for event in remote.follow():
                    yield _sse(event)
            finally:
                remote.close()
            if remote.complete:
                return
            had = remote.events if after == 0 else []  # all the reader has: the replay continues it
            last_event_id = remote.last_event_id or last_event_id
    feed = seen.feed if seen.feed is not None and not had else await _wait_for_feed(arena, battle_id, had)
    if feed is None:  # still generating elsewhere past every time limit: the client may reconnect
        return
    async for event in feed.follow(streaming.resume_after(last_event_id, feed.key)):
        yield _sse(event)


def _sse(event: streaming.Event | None) -> bytes:
    return b": ping\n\n" if event is None else event.encode()


def _give_up_s(limits: BattleLimits) -> float:
    """How long a reader waits for a turn generated elsewhere: past it, the generation has surely ended."""
    return limits.timeout_s + 30


async def _look(arena: Arena, battle_id: uuid.UUID, had: Sequence[streaming.Event] = ()) -> _Sighting:
    """This process's live feed of the battle's latest generation; else, if the turn is stored (by
    whichever process made it), a replay from the database (continuing ``had``); else no feed
    (generating elsewhere)."""
    async with transaction(arena.sessions) as session:
        battle = await repo.get_battle(session, battle_id)
        turn = await repo.get_turn(session, battle_id, battle.turns)
        key = feed_key(battle.turns, turn.regenerations if turn is not None else 0)
        live = arena.hub.feed(battle_id)
        if live is not None and live.key == key:  # generated here (else by another process, or long ago)
            return _Sighting(key, live, live_here=True, recent=True)
        if battle.status == BattleStatus.generating:
            return _Sighting(key, None, live_here=False, recent=True)
        answers = list(await repo.answers_of(session, battle_id, battle.turns))
        replay = streaming.replay(key, answers, "failed" if battle.status == BattleStatus.failed else "ready", had)
        finished = turn.finished_at if turn is not None else None
        recent = finished is not None and utcnow() - finished < timedelta(seconds=streaming.KEEP_FINISHED_S)
        return _Sighting(key, replay, live_here=False, recent=recent)


async def _wait_for_feed(arena: Arena, battle_id: uuid.UUID, had: Sequence[streaming.Event] = ()
                         ) -> TurnFeed | None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _give_up_s(arena.limits)
    while loop.time() < deadline:
        await asyncio.sleep(POLL_S)
        feed = (await _look(arena, battle_id, had)).feed
        if feed is not None:
            return feed
    return None


async def get(sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID) -> BattleOut:
    async with transaction(sessions) as session:
        return await view(session, await repo.get_battle(session, battle_id))


async def view(session: AsyncSession, battle: Battle) -> BattleOut:
    by_turn: dict[int, list[AnswerOut]] = defaultdict(list)
    turns: list[BattleTurn] = []
    rows = await repo.conversation(session, battle.id)
    if not rows:  # a battle from before turns were stored: its answers are turn 1's
        first = BattleTurn(battle_id=battle.id, turn=1, prompt=battle.prompt)
        rows = [(first, answer) for answer in await repo.answers_of(session, battle.id)] or [(first, None)]
    for turn, answer in rows:
        if not turns or turns[-1].turn != turn.turn:
            turns.append(turn)
        if answer is not None:
            by_turn[turn.turn].append(AnswerOut(side=answer.side, status=answer.status, text=answer.text,
                                                error=answer.error))
    out = BattleOut(id=battle.id, prompt=battle.prompt, status=battle.status, created_at=battle.created_at,
                    answers=by_turn.get(battle.turns, []),
                    turns=[TurnOut(turn=t.turn, prompt=t.prompt, answers=by_turn.get(t.turn, [])) for t in turns])
    if battle.status == BattleStatus.voted:
        vote = await repo.vote_of(session, battle.id)
        models = await registry.get_many(session, [battle.model_a_id, battle.model_b_id])
        out.model_a, out.model_b = (_reveal(models[battle.model_a_id]), _reveal(models[battle.model_b_id]))
        if vote is not None:
            out.vote = VoteIn(helpfulness=vote.helpfulness, safety=vote.safety, harm_category=vote.harm_category,
                              reason=vote.reason, reason_public=vote.reason_public)
            out.vote_counted, out.vote_excluded_reason = vote.excluded_reason is None, vote.excluded_reason
    return out


def _reveal(model: Contestant) -> RevealedModel:
    return RevealedModel(slug=model.slug, display_name=model.display_name, organisation=model.organisation)
