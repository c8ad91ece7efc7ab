"""The vote path: the rate limits, then one short transaction that checks the battle, stores the vote
and updates the counts.

The rate limits are counted first, in one autocommit statement (so every request counts, refused or
not, and an address's counter row is locked for that statement only). Then two statements
(arena.vote_store): a read that locks the battle and gathers what the checks, the caps and the anomaly
rules need, and a write that stores the vote, its flags, the pair counts, the style cell and the
battle's new status.
"""

import logging
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import NoReturn

import psycopg
from psycopg import AsyncConnection
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import service, style
from arena import vote_store as store
from arena.integrity import VoteFacts, VoterIdentity, flags_for
from arena.models import Battle, BattleStatus, Verdict
from arena.schemas import AnswerOut, BattleOut, TurnOut, VoteIn
from core import metrics
from core.db import engine_of, transaction, utcnow
from core.errors import LibraError, not_found
from core.keys import repository as counters
from core.settings import Settings

log = logging.getLogger(__name__)
DAY_S = 86_400


class VoteReceipt(BaseModel):
    """What became of a vote sent with an Idempotency-Key (e.g. one whose answer was lost)."""

    idempotency_key: str
    stored: bool
    battle_id: uuid.UUID
    created_at: datetime
    counted: bool  # False while held for review or kept out (identity leak, rejected)


def rate_limited(message: str, retry_after_s: int) -> LibraError:
    return LibraError(message, status=429, code="rate_limited", headers={"Retry-After": str(max(1, retry_after_s))})


def _conflict(message: str, code: str) -> LibraError:
    return LibraError(message, status=409, code=code)


async def record_vote(
    sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID, vote: VoteIn, voter: VoterIdentity | None = None,
    *, key: str | None = None, settings: Settings | None = None,
) -> BattleOut:
    """Three round trips on the driver's own connection (arena.vote_store): the rate-limit hits; BEGIN
    and the claim; the write and COMMIT. Rarer paths (a retry's stored answer) read through the ORM."""
    settings = settings or Settings(_env_file=None)
    for attempt in (1, 2):
        try:
            async with store.connection(engine_of(sessions)) as conn:
                if attempt == 1:
                    await _count_request(conn, voter, settings)
                answer = await _attempt(conn, battle_id, vote, voter, key, settings)
        except psycopg.errors.UniqueViolation:
            # A concurrent request stored a vote under the same key (or on the same battle) first; the
            # retry sees it and answers as for any retry (the stored vote's answer, or 409).
            log.info("arena.vote.key_race", extra={"battle": str(battle_id)})
            continue
        if isinstance(answer, _Replay):  # the stored vote's answer, read after the claim's rollback
            metrics.VOTES.labels("replay").inc()
            async with transaction(sessions) as session:
                return await service.view(session, answer.battle)
        return answer
    raise _conflict("this battle already has a vote", "already_voted")


async def _count_request(conn: AsyncConnection, voter: VoterIdentity | None, settings: Settings) -> None:
    """The window rate limits (LIBRA_RATE_VOTES per LIBRA_RATE_WINDOW_S), per session and per address:
    every request counts, whatever becomes of it; 429 past either limit."""
    if voter is None or settings.rate_votes == 0:
        return
    limits = {f"votes:session:{voter.session_hash}": settings.rate_votes,
              f"votes:addr:{voter.address_hash}": settings.rate_votes * settings.rate_address_factor}
    hits = await store.count_hits(conn, list(limits), settings.rate_window_s)
    if hits[0].count == 1:  # a client's new window: now and then, drop counters of clients long gone
        await conn.execute(counters.PURGE_SQL, {"older_than_s": 2 * DAY_S})
    for hit, most in zip(hits, limits.values(), strict=True):
        if hit.count > most:
            raise rate_limited(f"too many votes from this client; try again in {hit.retry_after_s} s",
                               hit.retry_after_s)


@dataclass(frozen=True)
class _Replay:
    """A retry of a stored vote: answered with the stored vote's view, nothing counted twice."""

    battle: Battle


async def _attempt(conn: AsyncConnection, battle_id: uuid.UUID, vote: VoteIn, voter: VoterIdentity | None,
                   key: str | None, settings: Settings) -> BattleOut | _Replay:
    claim = await store.claim(conn, battle_id, key, voter, settings.arena_vote_window_minutes,
                              settings.arena_burst_window_s)
    if claim is None:
        raise not_found("battle", battle_id)
    refusal = await _check(conn, claim, key, voter, settings)
    if refusal is not None:
        return refusal if isinstance(refusal, _Replay) else _raise(refusal)
    return await _store(conn, claim, vote, voter, key, settings)


def _raise(error: LibraError) -> NoReturn:
    raise error


async def _check(conn: AsyncConnection, claim: store.Claim, key: str | None, voter: VoterIdentity | None,
                 settings: Settings) -> LibraError | _Replay | None:
    battle, row = claim.battle, claim.row
    if key is not None and row.keyed is not None:
        return _replay(battle, key, row.keyed, voter)
    if voter is not None and battle.creator_hash is not None and battle.creator_hash != voter.session_hash:
        return LibraError("only the session that started this battle may vote on it", status=403,
                          code="not_your_battle")
    if battle.status == BattleStatus.voted:
        if key is not None and await store.stored_key(conn, battle.id) == key:
            return _Replay(battle)
        return _conflict("this battle already has a vote", "already_voted")
    if battle.status != BattleStatus.ready:
        return _conflict(f"this battle is {battle.status.value} and cannot be voted on", "not_votable")
    if _window_closed(claim, settings):
        return _conflict(f"the vote window closed {settings.arena_vote_window_minutes} minutes after the last "
                         "answer; this battle can no longer be voted on", "vote_expired")
    return _over_cap(row, voter, settings)


def _replay(battle: Battle, key: str, keyed: list, voter: VoterIdentity | None) -> LibraError | _Replay:
    same_session = voter is None or keyed[1] == voter.session_hash
    if keyed[0] == str(battle.id) and same_session:
        return _Replay(battle)
    return _conflict("this Idempotency-Key was already used for another vote; send a new key with each new vote",
                     "idempotency_key_reused")


def _window_closed(claim: store.Claim, settings: Settings) -> bool:
    own = getattr(service, "vote_window_closed", None)  # arena.service's rule, when it provides one
    return bool(own(claim.battle, settings)) if own is not None else bool(claim.row.window_closed)


def _over_cap(row: object, voter: VoterIdentity | None, settings: Settings) -> LibraError | None:
    if voter is None:
        return None
    for (count, left_s), cap, who in ((row.session_hour, settings.arena_votes_per_session_hour, "session"),
                                      (row.address_hour, settings.arena_votes_per_address_hour, "address")):
        if cap and count >= cap:
            return rate_limited(f"this {who} has cast {count} votes in the last hour (the cap is {cap}); "
                                f"try again in {int(left_s or 0) + 1} s", int(left_s or 0) + 1)
    return None


def _facts(claim: store.Claim, vote: VoteIn) -> VoteFacts:
    battle, row = claim.battle, claim.row
    a_battles, a_picked, b_battles, b_picked = row.sided or (0, 0, 0, 0)
    picks = {battle.model_a_id for v in (vote.helpfulness, vote.safety) if v == Verdict.a}
    picks |= {battle.model_b_id for v in (vote.helpfulness, vote.safety) if v == Verdict.b}
    return VoteFacts(words=int(row.words), read_s=row.read_s, network_votes=int(row.network_votes),
                     sided={battle.model_a_id: (a_battles, a_picked), battle.model_b_id: (b_battles, b_picked)},
                     picks=frozenset(picks))


async def _store(conn: AsyncConnection, claim: store.Claim, vote: VoteIn, voter: VoterIdentity | None,
                 key: str | None, settings: Settings) -> BattleOut:
    battle = claim.battle
    flags = flags_for(_facts(claim, vote), settings) if voter is not None else []
    # Kept and counted, but out of the ratings: an answer that named its model made it not blind.
    excluded = "identity_leak" if battle.identity_leak else ("review" if flags else None)
    counted = excluded is None
    counts = store.pair_rows(battle, vote) if counted else []
    cells = [style.style_cell_row(battle, vote.helpfulness, _style_totals(claim))] if counted else []
    write = store.Write(vote, key, voter, excluded, flags, claim.row.read_s, utcnow())
    await store.record(conn, battle, write, counts, cells)
    metrics.VOTES.labels("counted" if counted else "excluded").inc()  # after the commit
    log.info("arena.vote.recorded", extra={"battle": str(battle.id), "excluded": excluded,
                                           "flags": [f.rule for f in flags]})
    return _revealed(_conversation(claim), claim, vote, excluded)


def _conversation(claim: store.Claim) -> BattleOut:
    """The battle as the visitor saw it before the vote, from the turns and answers the claim read (the
    same view as arena.service.view, without another round trip)."""
    battle, row = claim.battle, claim.row
    answers: dict[int, list[AnswerOut]] = defaultdict(list)
    for turn, side, status, text_, error in row.answer_rows or []:
        answers[turn].append(AnswerOut(side=side, status=status, text=text_, error=error))
    turns = [(turn, prompt) for turn, prompt in row.turn_rows or []] or [(1, battle.prompt)]  # before turns
    return BattleOut(id=battle.id, prompt=battle.prompt, status=battle.status, created_at=battle.created_at,
                     answers=answers.get(battle.turns, []),
                     turns=[TurnOut(turn=turn, prompt=prompt, answers=answers.get(turn, [])) for turn, prompt in turns])


def _style_totals(claim: store.Claim) -> dict[str, tuple[int, ...]]:
    """Each side's style features summed over its turns, as the claim read them (zeros for no answer)."""
    read = claim.row.style_totals or {}
    return {side: tuple(int(v) for v in read.get(side, (0, 0, 0, 0))) for side in ("a", "b")}


def _revealed(out: BattleOut, claim: store.Claim, vote: VoteIn, excluded: str | None) -> BattleOut:
    out.status = BattleStatus.voted
    out.model_a, out.model_b = claim.revealed
    out.vote = vote
    out.vote_counted, out.vote_excluded_reason = excluded is None, excluded
    return out


async def find_vote(sessions: async_sessionmaker[AsyncSession], key: str, voter: VoterIdentity) -> VoteReceipt:
    """The vote this session stored under ``key``; 404 when there is none (the vote was never stored)."""
    query = text("SELECT v.battle_id, v.created_at, v.excluded_reason, v.session_hash, r.decision "
                 "FROM votes v LEFT JOIN vote_reviews r ON r.vote_id = v.id WHERE v.idempotency_key = :key")
    async with transaction(sessions) as session:
        row = (await session.execute(query, {"key": key})).first()
    if row is None or row.session_hash != voter.session_hash:  # another session's key reads as no vote
        raise not_found("vote with Idempotency-Key", key)
    counted = row.excluded_reason is None or (row.excluded_reason == "review" and row.decision == "approved")
    return VoteReceipt(idempotency_key=key, stored=True, battle_id=row.battle_id, created_at=row.created_at,
                       counted=counted)

