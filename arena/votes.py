"""The vote path: one short transaction that checks the battle, stores the vote and updates the counts.

Two statements (arena.vote_store): a read that locks the battle and gathers what the checks, the
caps and the anomaly rules need, then a write that counts the request in the rate limits and, if
they allow it, stores the vote, its flags, the pair counts and the battle's new status. A request
refused on the way still counts against the rate limits: its transaction commits the counter hits
alone, and the refusal is raised after the commit.
"""

import logging
import uuid
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena import service, style
from arena import vote_store as store
from arena.integrity import VoteFacts, VoterIdentity, flags_for
from arena.models import Battle, BattleStatus, Verdict
from arena.schemas import BattleOut, VoteIn
from core.db import transaction, utcnow
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
    settings = settings or Settings(_env_file=None)
    try:
        return await _attempt(sessions, battle_id, vote, voter, key, settings)
    except IntegrityError:
        # A concurrent request stored a vote under the same key first; the retry sees it and answers
        # as for any retry (the stored vote's answer, or 409 for another battle).
        log.info("arena.vote.key_race", extra={"battle": str(battle_id)})
    try:
        return await _attempt(sessions, battle_id, vote, voter, key, settings)
    except IntegrityError:
        raise _conflict("this battle already has a vote", "already_voted") from None


async def _attempt(sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID, vote: VoteIn,
                   voter: VoterIdentity | None, key: str | None, settings: Settings) -> BattleOut:
    async with transaction(sessions) as session:
        answer = await _vote_in(session, battle_id, vote, voter, key, settings)
    if isinstance(answer, LibraError):
        raise answer  # after the commit: the rate-limit hits of a refused request stay counted
    return answer


def _buckets(voter: VoterIdentity | None, settings: Settings) -> tuple[list[str], list[int]]:
    """The window rate limits (LIBRA_RATE_VOTES per LIBRA_RATE_WINDOW_S), per session and per address."""
    if voter is None or settings.rate_votes == 0:
        return [], []
    return ([f"votes:session:{voter.session_hash}", f"votes:addr:{voter.address_hash}"],
            [settings.rate_votes, settings.rate_votes * settings.rate_address_factor])


def _over_limit(hits: list[store.Hit], limits: list[int]) -> LibraError | None:
    for hit, most in zip(hits, limits, strict=False):
        if hit.count > most:
            return rate_limited(f"too many votes from this client; try again in {hit.retry_after_s} s",
                                hit.retry_after_s)
    return None


async def _refuse(session: AsyncSession, refusal: LibraError, voter: VoterIdentity | None,
                  settings: Settings) -> LibraError:
    buckets, limits = _buckets(voter, settings)
    found = {h.bucket: h for h in await store.hit_only(session, buckets, settings.rate_window_s)}
    hits = [found[b] for b in buckets]
    await _tidy(session, hits)
    return _over_limit(hits, limits) or refusal


async def _tidy(session: AsyncSession, hits: list[store.Hit]) -> None:
    if hits and hits[0].count == 1:  # a client's new window: now and then, drop counters of clients long gone
        await counters.purge_counters(session, older_than_s=2 * DAY_S)


async def _vote_in(session: AsyncSession, battle_id: uuid.UUID, vote: VoteIn, voter: VoterIdentity | None,
                   key: str | None, settings: Settings) -> BattleOut | LibraError:
    claim = await store.claim(session, battle_id, key, voter, settings.arena_vote_window_minutes,
                              settings.arena_burst_window_s)
    if claim is None:
        return await _refuse(session, not_found("battle", battle_id), voter, settings)
    refusal = await _check(session, claim, key, voter, settings)
    if isinstance(refusal, BattleOut):  # a retry of a stored vote: its answer again, nothing counted twice
        return refusal
    if refusal is not None:
        return await _refuse(session, refusal, voter, settings)
    return await _store(session, claim, vote, voter, key, settings)


async def _check(session: AsyncSession, claim: store.Claim, key: str | None, voter: VoterIdentity | None,
                 settings: Settings) -> LibraError | BattleOut | None:
    battle, row = claim.battle, claim.row
    if key is not None and row.keyed is not None:
        return await _replay(session, battle, key, row.keyed, voter)
    if voter is not None and battle.creator_hash is not None and battle.creator_hash != voter.session_hash:
        return LibraError("only the session that started this battle may vote on it", status=403,
                          code="not_your_battle")
    if battle.status == BattleStatus.voted:
        stored_key = await session.scalar(text("SELECT idempotency_key FROM votes WHERE battle_id = :b"),
                                          {"b": battle.id})  # a fresh read: a concurrent retry may have stored it
        if key is not None and stored_key == key:
            return await service.view(session, battle)
        return _conflict("this battle already has a vote", "already_voted")
    if battle.status != BattleStatus.ready:
        return _conflict(f"this battle is {battle.status.value} and cannot be voted on", "not_votable")
    if _window_closed(claim, settings):
        return _conflict(f"the vote window closed {settings.arena_vote_window_minutes} minutes after the last "
                         "answer; this battle can no longer be voted on", "vote_expired")
    return _over_cap(row, voter, settings)


async def _replay(session: AsyncSession, battle: Battle, key: str, keyed: list, voter: VoterIdentity | None
                  ) -> LibraError | BattleOut:
    same_session = voter is None or keyed[1] == voter.session_hash
    if keyed[0] == str(battle.id) and same_session:
        return await service.view(session, battle)
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


async def _store(session: AsyncSession, claim: store.Claim, vote: VoteIn, voter: VoterIdentity | None,
                 key: str | None, settings: Settings) -> BattleOut | LibraError:
    battle = claim.battle
    flags = flags_for(_facts(claim, vote), settings) if voter is not None else []
    # Kept and counted, but out of the ratings: an answer that named its model made it not blind.
    excluded = "identity_leak" if battle.identity_leak else ("review" if flags else None)
    out = await service.view(session, battle)  # read before the write: the shared rows are locked last
    if excluded is None:
        await style.bump_style_cell(session, battle, vote.helpfulness)
    buckets, limits = _buckets(voter, settings)
    write = store.Write(vote, key, voter, excluded, flags, claim.row.read_s, utcnow())
    counts = store.pair_rows(battle, vote) if excluded is None else []
    vote_id, hits = await store.record(session, battle, write, buckets, limits, settings.rate_window_s, counts)
    if vote_id is None:  # over a rate limit: raised inside, so the style cell's bump is rolled back too
        raise _over_limit(hits, limits) or rate_limited("too many votes from this client", settings.rate_window_s)
    await _tidy(session, sorted(hits, key=lambda h: buckets.index(h.bucket)))
    log.info("arena.vote.recorded", extra={"battle": str(battle.id), "excluded": excluded,
                                           "flags": [f.rule for f in flags]})
    return _revealed(out, claim, vote, excluded)


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

