"""The vote path: votes that arrive together share their round trips (group commit, core.batching).

A batch of votes takes three round trips on one connection (arena.vote_store), whatever its size:
1. the rate-limit hits of every vote, one autocommit statement (so every request counts, refused or
   not, and an address's counter row is locked for that statement only);
2. BEGIN and one claim per vote: each locks its battle and reads what the checks, the caps and the
   anomaly rules need;
3. one write per stored vote (the vote, its flags, the pair counts, the style cell and the battle's new
   status) and COMMIT.
The checks run in Python between 2 and 3, in the batch's order, each vote seeing the batch's earlier
votes as if they had been committed. A lone vote is a batch of one. A vote the batch cannot decide (its
write failed, or it needs a fresh read) goes through the single path, the same statements for it alone.
"""

import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import AsyncConnection
from pydantic import BaseModel
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from arena import service, style
from arena import vote_store as store
from arena.integrity import VoteFacts, VoterIdentity, flags_for
from arena.models import Battle, BattleStatus, Verdict
from arena.schemas import AnswerOut, BattleOut, TurnOut, VoteIn
from core import batching, metrics
from core.db import engine_of, transaction, utcnow
from core.errors import LibraError, not_found
from core.keys import repository as counters
from core.keys.limits import client_buckets, opens_window, purge_when_due, rate_limited, refusal
from core.settings import Settings

log = logging.getLogger(__name__)


class VoteReceipt(BaseModel):
    """What became of a vote sent with an Idempotency-Key (e.g. one whose answer was lost)."""

    idempotency_key: str
    stored: bool
    battle_id: uuid.UUID
    created_at: datetime
    counted: bool  # False while held for review or kept out (identity leak, rejected)


def _conflict(message: str, code: str) -> LibraError:
    return LibraError(message, status=409, code=code)


# At most this many votes share a batch: enough for every client of a busy process at once, few enough
# that the battles a batch locks are held for a few milliseconds.
BATCH_MOST = 32


@dataclass(frozen=True)
class _Ballot:
    """One vote request, as it waits for its batch."""

    engine: AsyncEngine  # batches are per engine (and event loop): see core.batching.for_owner
    battle_id: uuid.UUID
    vote: VoteIn
    voter: VoterIdentity | None
    key: str | None
    settings: Settings


@dataclass(frozen=True)
class _Replay:
    """A retry of a stored vote: answered with the stored vote's view, nothing counted twice."""

    battle: Battle


class _Alone:
    """A vote its batch could not decide (a write that failed: a key raced by another process, a
    deadlock; or a fresh read it needs): it goes through the single path, its rate-limit hits counted."""


_ALONE = _Alone()
Outcome = BattleOut | _Replay | LibraError | _Alone


async def record_vote(
    sessions: async_sessionmaker[AsyncSession], battle_id: uuid.UUID, vote: VoteIn, voter: VoterIdentity | None = None,
    *, key: str | None = None, settings: Settings | None = None,
) -> BattleOut:
    """The vote goes in the next batch of this process's votes (core.batching): three round trips on
    the driver's own connection for the whole batch (arena.vote_store), the rate-limit hits; BEGIN and
    the claims; the writes and COMMIT. Rarer paths (a retry's stored answer) read through the ORM."""
    settings = settings or Settings(_env_file=None)
    engine = engine_of(sessions)
    batches = batching.for_owner(engine, lambda: batching.Batches(_run_batch, _fits, BATCH_MOST))
    ballot = _Ballot(engine, battle_id, vote, voter, key, settings)
    outcome = await batches.submit(ballot)
    if isinstance(outcome, _Alone):
        outcome = await _alone(ballot)
    if isinstance(outcome, LibraError):
        raise outcome
    if isinstance(outcome, _Replay):  # the stored vote's answer, read after the claim's rollback
        metrics.VOTES.labels("replay").inc()
        async with transaction(sessions) as session:
            return await service.view(session, outcome.battle)
    return outcome


def _fits(batch: list[_Ballot], ballot: _Ballot) -> bool:
    """At most one vote per battle, per session and per key in a batch: what the claims read about a
    battle, a session's votes and a key is then exact, and a second vote meets the first one committed."""
    first = batch[0]
    if ballot.settings is not first.settings:
        return False
    session = ballot.voter.session_hash if ballot.voter else None
    return not any(other.battle_id == ballot.battle_id or (ballot.key is not None and other.key == ballot.key)
                   or (session is not None and other.voter is not None and other.voter.session_hash == session)
                   for other in batch)


async def _run_batch(ballots: list[_Ballot]) -> list[Outcome]:
    """One batch on one connection: the hits of every vote; BEGIN and the claims, battles in id order;
    the checks in that order, each vote seeing the batch's earlier votes by its address and network;
    the writes, in model-pair order, and COMMIT."""
    settings = ballots[0].settings
    async with store.connection(ballots[0].engine) as conn:
        refusals = await _count_requests(conn, ballots, settings)
        live = sorted((i for i, refusal in enumerate(refusals) if refusal is None), key=lambda i: ballots[i].battle_id)
        undecided: list[Outcome] = [_ALONE if refusal is None else refusal for refusal in refusals]
        outcomes = list(undecided)
        if not live:
            return outcomes
        asks = [store.Ask(ballots[i].battle_id, ballots[i].key, ballots[i].voter) for i in live]
        claims = await store.claim_many(conn, asks, settings)
        earlier = _Earlier()
        to_write: dict[int, tuple[store.Claim, store.Record]] = {}
        for i, found in zip(live, claims, strict=True):
            ballot = ballots[i]
            claim = earlier.seen_by(found, ballot.voter) if found is not None else None
            decided = _decide(claim, ballot)
            if isinstance(decided, store.Record):
                to_write[i] = (claim, decided)
                earlier.add(ballot.voter)
            else:
                outcomes[i] = decided
        if not to_write:  # the claims' transaction is rolled back as the connection goes back
            return outcomes
        order = sorted(to_write, key=lambda i: (to_write[i][1].battle.model_pair, ballots[i].battle_id))
        try:
            await store.record_many(conn, [to_write[i][1] for i in order])
        except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as error:
            # The whole batch rolled back: every vote it claimed goes through the single path instead.
            log.info("arena.vote.batch_retried", extra={"votes": len(live), "error": type(error).__name__})
            return undecided
    for i, (claim, record) in to_write.items():
        outcomes[i] = _finish(claim, record)
    return outcomes


async def _alone(ballot: _Ballot) -> Outcome:
    """The single path: one vote, its own claim and write (its rate-limit hits were counted in its batch)."""
    settings = ballot.settings
    for _attempt in (1, 2):
        try:
            async with store.connection(ballot.engine) as conn:
                ask = store.Ask(ballot.battle_id, ballot.key, ballot.voter)
                [claim] = await store.claim_many(conn, [ask], settings)
                decided = _decide(claim, ballot)
                if isinstance(decided, _Alone):  # a voted battle and a key: is it this key's vote?
                    stored = await store.stored_key(conn, ballot.battle_id)
                    decided = _Replay(claim.battle) if stored == ballot.key else _already_voted()
                if not isinstance(decided, store.Record):
                    return decided
                await store.record_many(conn, [decided])
                return _finish(claim, decided)
        except psycopg.errors.UniqueViolation:
            # A concurrent request stored a vote under the same key (or on the same battle) first; the
            # retry sees it and answers as for any retry (the stored vote's answer, or 409).
            log.info("arena.vote.key_race", extra={"battle": str(ballot.battle_id)})
    return _already_voted()


class _Earlier:
    """The votes a batch has decided to store so far, by address and by network: the claims read the
    committed votes only, and the caps and the burst rule count these too, as if each had been committed."""

    def __init__(self) -> None:
        self.addresses: Counter[tuple[str, str]] = Counter()
        self.networks: Counter[str] = Counter()

    def seen_by(self, claim: store.Claim, voter: VoterIdentity | None) -> store.Claim:
        if voter is None:
            return claim
        row = claim.row
        extra = self.addresses[(voter.network_hash, voter.address_hash)]
        more = self.networks[voter.network_hash]
        if not (extra or more):
            return claim
        count, left_s = row.address_hour or (0, None)
        address_hour = (count + extra, store.HOUR_S if left_s is None else left_s)
        return store.Claim(claim.battle, row._replace(address_hour=address_hour,
                                                      network_votes=int(row.network_votes) + more))

    def add(self, voter: VoterIdentity | None) -> None:
        if voter is not None:
            self.addresses[(voter.network_hash, voter.address_hash)] += 1
            self.networks[voter.network_hash] += 1


async def _count_requests(conn: AsyncConnection, ballots: list[_Ballot], settings: Settings) -> list[LibraError | None]:
    """The window rate limits (LIBRA_RATE_VOTES per LIBRA_RATE_WINDOW_S), per session and per address,
    for every vote of a batch in one statement: every request counts, whatever becomes of it; 429 past
    either limit."""
    limits = [_buckets(ballot.voter, settings) for ballot in ballots]
    named = [bucket for mine in limits for bucket, _ in mine]
    if not named:
        return [None] * len(ballots)
    hits = await counters.count_hits(conn, named, settings.rate_window_s)
    refusals: list[LibraError | None] = []
    new_window, start = False, 0
    for mine in limits:
        own = hits[start:start + len(mine)]
        start += len(mine)
        new_window = new_window or opens_window(own)
        refusals.append(refusal("votes", mine, own))
    await purge_when_due(conn, new_window)
    return refusals


def _buckets(voter: VoterIdentity | None, settings: Settings) -> list[tuple[str, int]]:
    """A vote's rate-limit counters: by the voter's salted hashes (never the address itself)."""
    if voter is None:
        return []
    return client_buckets("votes", voter.session_hash, voter.address_hash, settings.rate_votes,
                          settings.rate_address_factor)


def _already_voted() -> LibraError:
    return _conflict("this battle already has a vote", "already_voted")


def _decide(claim: store.Claim | None, ballot: _Ballot) -> store.Record | LibraError | _Replay | _Alone:
    """What becomes of a vote, from its claim alone: the write to make, a refusal, a replay, or _ALONE
    when it takes a fresh read of the battle's stored vote (a voted battle and a key)."""
    if claim is None:
        return not_found("battle", ballot.battle_id)
    refusal = _check(claim, ballot.key, ballot.voter, ballot.settings)
    return refusal if refusal is not None else _record(claim, ballot)


def _check(claim: store.Claim, key: str | None, voter: VoterIdentity | None,
           settings: Settings) -> LibraError | _Replay | _Alone | None:
    battle, row = claim.battle, claim.row
    if key is not None and row.keyed is not None:
        return _replay(battle, key, row.keyed, voter)
    if voter is not None and battle.creator_hash is not None and battle.creator_hash != voter.session_hash:
        return LibraError("only the session that started this battle may vote on it", status=403,
                          code="not_your_battle")
    if battle.status == BattleStatus.voted:
        return _ALONE if key is not None else _already_voted()
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


def _record(claim: store.Claim, ballot: _Ballot) -> store.Record:
    """The vote to store: its flags, whether it counts, and what it adds to the pair counts and style cells."""
    battle, vote, voter = claim.battle, ballot.vote, ballot.voter
    flags = flags_for(_facts(claim, vote), ballot.settings) if voter is not None else []
    # Kept and counted, but out of the ratings: an answer that named its model made it not blind.
    excluded = "identity_leak" if battle.identity_leak else ("review" if flags else None)
    counted = excluded is None
    counts = store.pair_rows(battle, vote) if counted else []
    cells = [style.style_cell_row(battle, vote.helpfulness, _style_totals(claim))] if counted else []
    write = store.Write(vote, ballot.key, voter, excluded, flags, claim.row.read_s, utcnow())
    return store.Record(battle, write, counts, cells)


def _finish(claim: store.Claim, record: store.Record) -> BattleOut:
    """After the commit: the metrics, the log line and the answer that reveals both models."""
    write = record.write
    metrics.VOTES.labels("counted" if write.excluded is None else "excluded").inc()
    log.info("arena.vote.recorded", extra={"battle": str(record.battle.id), "excluded": write.excluded,
                                           "flags": [f.rule for f in write.flags]})
    return _revealed(_conversation(claim), claim, write.vote, write.excluded)


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

