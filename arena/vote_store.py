"""The vote path's SQL: a read that locks a battle (the claim) and a write that does the rest (the record),
each sent for a whole batch of votes in one round trip (arena.votes).

Written as SQL text rather than ORM units of work because the vote is the arena's hottest request. The
write takes its row locks on the shared rows (the pair counts and the style cell of a model pair) last,
just before the commit, so that concurrent votes wait on each other for as short a time as possible.
The rate limits are counted before, outside the votes' transaction (core.keys.repository.HIT_MANY_SQL),
so the hottest row of all, an address's counter, is never held while votes are being written.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import namedtuple_row
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from arena.integrity import Flag, VoterIdentity
from arena.models import Battle, BattleStatus, PromptSource, Verdict
from arena.schemas import RevealedModel, VoteIn
from core.db import driver_connection as connection  # noqa: F401  (arena.votes opens its connection here)
from core.settings import Settings

HOUR_S = 3600

# The words the voter just read are the answers' style lengths, counted when the answers were stored: splitting
# the texts here made a claim with two answers of 330 words cost 0.850 ms instead of 0.468 (benchmarks/vote_claim.py).
# A row written without them (before style features, or by hand) is split here, as before.
# The battle (locked), the words the voter just read, the vote already stored under this key, and
# what the caps and the anomaly rules need: the session's and the address's votes in the last hour,
# the address range's votes in the burst window (counted up to the burst rule's threshold, so that a busy
# range costs each claim no more than that), and the session's earlier votes on battles with either model
# (battles, and how many of them picked that model on helpfulness or safety).
_CLAIM = r"""
SELECT b.id, b.prompt, b.status, b.model_a_id, b.model_b_id, b.created_at, b.identity_leak, b.prompt_source,
       b.turns, b.answered_at, b.creator_hash,
       extract(epoch FROM clock_timestamp() - b.answered_at)::float8 AS read_s,
       coalesce(b.answered_at + make_interval(mins => %(window_min)s) < clock_timestamp(), false) AS window_closed,
       (SELECT coalesce(sum(CASE WHEN a.style_length > 0 THEN a.style_length
                                 ELSE cardinality(regexp_split_to_array(btrim(a.text), '\s+')) END), 0)
          FROM battle_answers a
         WHERE a.battle_id = b.id AND a.turn = b.turns AND (a.style_length > 0 OR btrim(a.text) <> '')) AS words,
       (SELECT json_object_agg(t.side, json_build_array(t.length, t.headers, t.lists, t.bold))
          FROM (SELECT a.side, coalesce(sum(a.style_length), 0) AS length, coalesce(sum(a.style_headers), 0) AS headers,
                       coalesce(sum(a.style_lists), 0) AS lists, coalesce(sum(a.style_bold), 0) AS bold
                  FROM battle_answers a WHERE a.battle_id = b.id GROUP BY a.side) t) AS style_totals,
       (SELECT json_agg(json_build_array(t.turn, t.prompt) ORDER BY t.turn) FROM battle_turns t
         WHERE t.battle_id = b.id) AS turn_rows,
       (SELECT json_agg(json_build_array(a.turn, a.side, a.status, a.text, a.error) ORDER BY a.turn, a.side)
          FROM battle_answers a WHERE a.battle_id = b.id) AS answer_rows,
       (SELECT json_build_array(v.battle_id, v.session_hash) FROM votes v WHERE v.idempotency_key = %(key)s) AS keyed,
       (SELECT json_build_array(count(*), extract(epoch FROM min(v.created_at) + interval '1 hour' - clock_timestamp()))
          FROM votes v WHERE v.session_hash = %(session)s AND v.created_at > clock_timestamp() - interval '1 hour')
         AS session_hour,
       (SELECT json_build_array(count(*), extract(epoch FROM min(v.created_at) + interval '1 hour' - clock_timestamp()))
          FROM votes v WHERE v.network_hash = %(network)s AND v.address_hash = %(address)s
           AND v.created_at > clock_timestamp() - interval '1 hour') AS address_hour,
       (SELECT count(*) FROM (SELECT FROM votes v WHERE v.network_hash = %(network)s
           AND v.created_at > clock_timestamp() - make_interval(secs => %(burst_s)s) LIMIT %(burst_most)s) n)
         AS network_votes,
       (SELECT json_build_array(
            count(*) FILTER (WHERE b.model_a_id IN (vb.model_a_id, vb.model_b_id)),
            count(*) FILTER (WHERE (vb.model_a_id = b.model_a_id AND 'a' IN (v.helpfulness, v.safety))
                                OR (vb.model_b_id = b.model_a_id AND 'b' IN (v.helpfulness, v.safety))),
            count(*) FILTER (WHERE b.model_b_id IN (vb.model_a_id, vb.model_b_id)),
            count(*) FILTER (WHERE (vb.model_a_id = b.model_b_id AND 'a' IN (v.helpfulness, v.safety))
                                OR (vb.model_b_id = b.model_b_id AND 'b' IN (v.helpfulness, v.safety))))
          FROM votes v JOIN battles vb ON vb.id = v.battle_id WHERE v.session_hash = %(session)s) AS sided,
       ma.slug AS a_slug, ma.display_name AS a_name, ma.organisation AS a_org,
       mb.slug AS b_slug, mb.display_name AS b_name, mb.organisation AS b_org
FROM battles b JOIN models ma ON ma.id = b.model_a_id JOIN models mb ON mb.id = b.model_b_id
WHERE b.id = %(battle)s
FOR UPDATE OF b
"""


# The vote, its flags, every pair-count row in one upsert, the style cell, and the battle's new status:
# one statement, whose row locks on the shared rows (pair counts, style cell) are the last taken before
# the commit. The rate limits were counted before the transaction (core.keys.repository.HIT_MANY_SQL).
_RECORD = """
WITH v AS (
  INSERT INTO votes (battle_id, helpfulness, safety, harm_category, reason, reason_public, excluded_reason,
                     created_at, idempotency_key, session_hash, address_hash, network_hash, read_s)
  VALUES (CAST(%(battle)s AS uuid), CAST(%(helpfulness)s AS varchar), CAST(%(safety)s AS varchar),
          CAST(%(harm_category)s AS varchar), CAST(%(reason)s AS text), CAST(%(reason_public)s AS boolean),
          CAST(%(excluded)s AS varchar), CAST(%(created_at)s AS timestamptz), CAST(%(key)s AS varchar),
          CAST(%(session)s AS varchar), CAST(%(address)s AS varchar), CAST(%(network)s AS varchar), CAST(%(read_s)s AS float8))
  RETURNING id
),
f AS (
  INSERT INTO vote_flags (vote_id, rule, detail, created_at)
  SELECT v.id, r.rule, r.detail, CAST(%(created_at)s AS timestamptz)
    FROM v CROSS JOIN jsonb_to_recordset(CAST(%(flags)s AS jsonb)) AS r(rule text, detail jsonb)
),
pc AS (
  INSERT INTO pair_counts (dimension, model_lo_id, model_hi_id, lo_wins, hi_wins, ties, both_bad)
  SELECT r.dimension, r.model_lo_id, r.model_hi_id, r.lo_wins, r.hi_wins, r.ties, r.both_bad
    FROM v CROSS JOIN jsonb_to_recordset(CAST(%(counts)s AS jsonb))
      AS r(dimension text, model_lo_id int, model_hi_id int, lo_wins int, hi_wins int, ties int, both_bad int)
  ON CONFLICT (dimension, model_lo_id, model_hi_id) DO UPDATE
    SET lo_wins = pair_counts.lo_wins + excluded.lo_wins, hi_wins = pair_counts.hi_wins + excluded.hi_wins,
        ties = pair_counts.ties + excluded.ties, both_bad = pair_counts.both_bad + excluded.both_bad
),
sc AS (
  INSERT INTO style_cells AS c (model_lo_id, model_hi_id, bin, lo_wins, hi_wins, ties, both_bad,
                                z_length, z_headers, z_lists, z_bold)
  SELECT r.model_lo_id, r.model_hi_id, r.bin, r.lo_wins, r.hi_wins, r.ties, r.both_bad,
         r.z_length, r.z_headers, r.z_lists, r.z_bold
    FROM v CROSS JOIN jsonb_to_recordset(CAST(%(style)s AS jsonb))
      AS r(model_lo_id int, model_hi_id int, bin int, lo_wins int, hi_wins int, ties int, both_bad int,
           z_length float8, z_headers float8, z_lists float8, z_bold float8)
  ON CONFLICT (model_lo_id, model_hi_id, bin) DO UPDATE
    SET lo_wins = c.lo_wins + excluded.lo_wins, hi_wins = c.hi_wins + excluded.hi_wins,
        ties = c.ties + excluded.ties, both_bad = c.both_bad + excluded.both_bad,
        z_length = c.z_length + excluded.z_length, z_headers = c.z_headers + excluded.z_headers,
        z_lists = c.z_lists + excluded.z_lists, z_bold = c.z_bold + excluded.z_bold
),
u AS (
  UPDATE battles SET status = 'voted', finished_at = CAST(%(created_at)s AS timestamptz) FROM v
   WHERE battles.id = CAST(%(battle)s AS uuid)
)
SELECT id AS vote_id FROM v
"""


# What the vote path reads of a battle: not its draw record (JSON, parsed for nothing), seed or attack.
_BATTLE_COLUMNS = ("id", "prompt", "model_a_id", "model_b_id", "created_at", "identity_leak", "turns", "answered_at",
                   "creator_hash")


@dataclass(frozen=True)
class Claim:
    """The locked battle and the facts around it, as the claim statement read them."""

    battle: Battle  # transient (not in the session): the vote path writes with SQL, never by flushing it
    row: Any

    @property
    def revealed(self) -> tuple[RevealedModel, RevealedModel]:
        r = self.row
        return (RevealedModel(slug=r.a_slug, display_name=r.a_name, organisation=r.a_org),
                RevealedModel(slug=r.b_slug, display_name=r.b_name, organisation=r.b_org))


def _battle(row: Any) -> Battle:
    battle = Battle(**{name: getattr(row, name) for name in _BATTLE_COLUMNS})
    battle.status, battle.prompt_source = BattleStatus(row.status), PromptSource(row.prompt_source)
    return battle


@dataclass(frozen=True)
class Ask:
    """One vote's claim: the battle, the vote's Idempotency-Key and who votes."""

    battle_id: uuid.UUID
    key: str | None
    voter: VoterIdentity | None


async def claim_many(conn: AsyncConnection, asks: list[Ask], settings: Settings) -> list[Claim | None]:
    """Opens the votes' transaction and locks their battles, in the order given (callers sort by battle,
    so that concurrent batches lock in the same order): BEGIN and one claim per vote, one round trip.
    None for a battle that does not exist."""
    cursors = []
    async with conn.pipeline():
        await conn.execute("BEGIN")
        for ask in asks:
            cursor = conn.cursor(row_factory=namedtuple_row)
            voter = ask.voter
            await cursor.execute(_CLAIM, {
                "battle": ask.battle_id, "key": ask.key, "window_min": settings.arena_vote_window_minutes,
                "burst_s": settings.arena_burst_window_s, "burst_most": settings.arena_burst_votes,
                "session": voter.session_hash if voter else None, "address": voter.address_hash if voter else None,
                "network": voter.network_hash if voter else None})
            cursors.append(cursor)
    rows = [await cursor.fetchone() for cursor in cursors]
    return [None if row is None else Claim(_battle(row), row) for row in rows]


async def stored_key(conn: AsyncConnection, battle_id: uuid.UUID) -> str | None:
    """The key of the vote stored on a battle (a fresh read: a concurrent retry may just have stored it)."""
    row = await (await conn.execute("SELECT idempotency_key FROM votes WHERE battle_id = %s", (battle_id,))).fetchone()
    return row[0] if row else None


def pair_rows(battle: Battle, vote: VoteIn) -> list[dict[str, Any]]:
    """The pair-count increments of one counted vote: each axis, overall and for the battle's prompt source."""
    lo, hi = battle.model_pair
    rows = []
    for axis, verdict in (("helpfulness", vote.helpfulness), ("safety", vote.safety)):
        if verdict is None:
            continue
        winner_is_lo = (verdict == Verdict.a) == (battle.model_a_id == lo)
        column = {Verdict.tie: "ties", Verdict.both_bad: "both_bad"}.get(verdict, "lo_wins" if winner_is_lo
                                                                          else "hi_wins")
        for dimension in (axis, f"{axis}@{battle.prompt_source.value}"):
            row = {"dimension": dimension, "model_lo_id": lo, "model_hi_id": hi,
                   "lo_wins": 0, "hi_wins": 0, "ties": 0, "both_bad": 0}
            rows.append({**row, column: 1})
    return rows


@dataclass(frozen=True)
class Write:
    vote: VoteIn
    key: str | None
    voter: VoterIdentity | None
    excluded: str | None
    flags: list[Flag]
    read_s: float | None
    created_at: datetime


@dataclass(frozen=True)
class Record:
    """One vote to store, with the pair-count increments and the style cell it adds."""

    battle: Battle
    write: Write
    counts: list[dict[str, Any]]
    style: list[dict[str, Any]]


async def record_many(conn: AsyncConnection, records: list[Record]) -> None:
    """Stores the votes with everything they change and commits: one statement per vote and the COMMIT,
    one round trip, in the order given (callers sort by model pair, so that concurrent batches lock the
    shared rows in the same order)."""
    async with conn.pipeline():
        for entry in records:
            voter, vote, write = entry.write.voter, entry.write.vote, entry.write
            await conn.execute(_RECORD, {
                "battle": entry.battle.id,
                "helpfulness": vote.helpfulness.value, "safety": vote.safety.value if vote.safety else None,
                "harm_category": vote.harm_category, "reason": vote.reason, "reason_public": vote.reason_public,
                "excluded": write.excluded, "created_at": write.created_at, "key": write.key,
                "read_s": write.read_s, "session": voter.session_hash if voter else None,
                "address": voter.address_hash if voter else None, "network": voter.network_hash if voter else None,
                "flags": json.dumps([{"rule": f.rule, "detail": f.detail} for f in write.flags]),
                "counts": json.dumps(entry.counts), "style": json.dumps(entry.style)})
        await conn.execute("COMMIT")


_BUMP = text("""
INSERT INTO pair_counts (dimension, model_lo_id, model_hi_id, lo_wins, hi_wins, ties, both_bad)
SELECT r.dimension, r.model_lo_id, r.model_hi_id, r.lo_wins, r.hi_wins, r.ties, r.both_bad
  FROM jsonb_to_recordset(CAST(:counts AS jsonb))
    AS r(dimension text, model_lo_id int, model_hi_id int, lo_wins int, hi_wins int, ties int, both_bad int)
ON CONFLICT (dimension, model_lo_id, model_hi_id) DO UPDATE
  SET lo_wins = pair_counts.lo_wins + excluded.lo_wins, hi_wins = pair_counts.hi_wins + excluded.hi_wins,
      ties = pair_counts.ties + excluded.ties, both_bad = pair_counts.both_bad + excluded.both_bad
""")


async def bump_counts(session: AsyncSession, counts: list[dict[str, Any]]) -> None:
    """Pair counts of a vote counted later (approved on review), in one upsert."""
    await session.execute(_BUMP, {"counts": json.dumps(counts)})
