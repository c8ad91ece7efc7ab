"""The vote path's SQL: two statements, a read that locks the battle and a write that does the rest.

Written as SQL text rather than ORM units of work because the vote is the arena's hottest request:
each statement is one round trip, and the write takes its row locks on the shared rows (the rate
counters of an address, the pair counts of a model pair) last, just before the commit, so that
concurrent votes wait on each other for as short a time as possible.
"""

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from arena.integrity import Flag, VoterIdentity
from arena.models import Battle, BattleStatus, PromptSource, Verdict
from arena.schemas import RevealedModel, VoteIn

HOUR_S = 3600

# The battle (locked), the words the voter just read, the vote already stored under this key, and
# what the caps and the anomaly rules need: the session's and the address's votes in the last hour,
# the address range's votes in the burst window, and the session's earlier votes on battles with
# either model (battles, and how many of them picked that model on helpfulness or safety).
_CLAIM = text(r"""
SELECT b.id, b.prompt, b.status, b.model_a_id, b.model_b_id, b.sampling_seed, b.created_at, b.finished_at,
       b.identity_leak, b.identity_rules_version, b.prompt_source, b.attack, b.pool_item, b.turns,
       b.answered_at, b.creator_hash, b.address_hash, b.pairing,
       extract(epoch FROM clock_timestamp() - b.answered_at)::float8 AS read_s,
       coalesce(b.answered_at + make_interval(mins => :window_min) < clock_timestamp(), false) AS window_closed,
       (SELECT coalesce(sum(cardinality(regexp_split_to_array(btrim(a.text), '\s+'))), 0) FROM battle_answers a
         WHERE a.battle_id = b.id AND a.turn = b.turns AND btrim(a.text) <> '') AS words,
       (SELECT json_build_array(v.battle_id, v.session_hash) FROM votes v WHERE v.idempotency_key = :key) AS keyed,
       (SELECT json_build_array(count(*), extract(epoch FROM min(v.created_at) + interval '1 hour' - clock_timestamp()))
          FROM votes v WHERE v.session_hash = :session AND v.created_at > clock_timestamp() - interval '1 hour')
         AS session_hour,
       (SELECT json_build_array(count(*), extract(epoch FROM min(v.created_at) + interval '1 hour' - clock_timestamp()))
          FROM votes v WHERE v.network_hash = :network AND v.address_hash = :address
           AND v.created_at > clock_timestamp() - interval '1 hour') AS address_hour,
       (SELECT count(*) FROM votes v WHERE v.network_hash = :network
           AND v.created_at > clock_timestamp() - make_interval(secs => :burst_s)) AS network_votes,
       (SELECT json_build_array(
            count(*) FILTER (WHERE b.model_a_id IN (vb.model_a_id, vb.model_b_id)),
            count(*) FILTER (WHERE (vb.model_a_id = b.model_a_id AND 'a' IN (v.helpfulness, v.safety))
                                OR (vb.model_b_id = b.model_a_id AND 'b' IN (v.helpfulness, v.safety))),
            count(*) FILTER (WHERE b.model_b_id IN (vb.model_a_id, vb.model_b_id)),
            count(*) FILTER (WHERE (vb.model_a_id = b.model_b_id AND 'a' IN (v.helpfulness, v.safety))
                                OR (vb.model_b_id = b.model_b_id AND 'b' IN (v.helpfulness, v.safety))))
          FROM votes v JOIN battles vb ON vb.id = v.battle_id WHERE v.session_hash = :session) AS sided,
       ma.slug AS a_slug, ma.display_name AS a_name, ma.organisation AS a_org,
       mb.slug AS b_slug, mb.display_name AS b_name, mb.organisation AS b_org
FROM battles b JOIN models ma ON ma.id = b.model_a_id JOIN models mb ON mb.id = b.model_b_id
WHERE b.id = :battle
FOR UPDATE OF b
""")

# The window rate limits (fixed windows, as server.limits counts every other action), then, only if
# they allow it, the vote, its flags, every pair-count row in one upsert, and the battle's new status.
_HITS = r"""
hits AS (
  INSERT INTO rate_counters AS c (bucket, window_start, count)
  SELECT bucket, to_timestamp(floor(extract(epoch FROM clock_timestamp()) / :rate_window) * :rate_window), 1
    FROM unnest(CAST(:buckets AS text[])) AS bucket
  ON CONFLICT (bucket) DO UPDATE
    SET count = CASE WHEN c.window_start = excluded.window_start THEN c.count + 1 ELSE 1 END,
        window_start = excluded.window_start
  RETURNING c.bucket, c.count,
    ceil(extract(epoch FROM c.window_start) + :rate_window - extract(epoch FROM clock_timestamp()))::int AS left_s
)"""

_HITS_ONLY = text(f"WITH {_HITS} SELECT json_agg(json_build_array(bucket, count, left_s)) AS hits FROM hits")

_RECORD = text(f"""
WITH {_HITS},
allowed AS (
  SELECT coalesce(bool_and(h.count <= l.most), true) AS ok
    FROM hits h JOIN unnest(CAST(:buckets AS text[]), CAST(:limits AS bigint[])) AS l(bucket, most) USING (bucket)
),
v AS (
  INSERT INTO votes (battle_id, helpfulness, safety, harm_category, reason, reason_public, excluded_reason,
                     created_at, idempotency_key, session_hash, address_hash, network_hash, read_s)
  SELECT CAST(:battle AS uuid), CAST(:helpfulness AS varchar), CAST(:safety AS varchar),
         CAST(:harm_category AS varchar), CAST(:reason AS text), CAST(:reason_public AS boolean),
         CAST(:excluded AS varchar), CAST(:created_at AS timestamptz), CAST(:key AS varchar),
         CAST(:session AS varchar), CAST(:address AS varchar), CAST(:network AS varchar), CAST(:read_s AS float8)
    FROM allowed WHERE allowed.ok
  RETURNING id
),
f AS (
  INSERT INTO vote_flags (vote_id, rule, detail, created_at)
  SELECT v.id, r.rule, r.detail, CAST(:created_at AS timestamptz)
    FROM v CROSS JOIN jsonb_to_recordset(CAST(:flags AS jsonb)) AS r(rule text, detail jsonb)
),
pc AS (
  INSERT INTO pair_counts (dimension, model_lo_id, model_hi_id, lo_wins, hi_wins, ties, both_bad)
  SELECT r.dimension, r.model_lo_id, r.model_hi_id, r.lo_wins, r.hi_wins, r.ties, r.both_bad
    FROM v CROSS JOIN jsonb_to_recordset(CAST(:counts AS jsonb))
      AS r(dimension text, model_lo_id int, model_hi_id int, lo_wins int, hi_wins int, ties int, both_bad int)
  ON CONFLICT (dimension, model_lo_id, model_hi_id) DO UPDATE
    SET lo_wins = pair_counts.lo_wins + excluded.lo_wins, hi_wins = pair_counts.hi_wins + excluded.hi_wins,
        ties = pair_counts.ties + excluded.ties, both_bad = pair_counts.both_bad + excluded.both_bad
),
u AS (
  UPDATE battles SET status = 'voted', finished_at = CAST(:created_at AS timestamptz) FROM v
   WHERE battles.id = CAST(:battle AS uuid)
)
SELECT (SELECT id FROM v) AS vote_id, (SELECT json_agg(json_build_array(bucket, count, left_s)) FROM hits) AS hits
""")

_BATTLE_COLUMNS = ("id", "prompt", "model_a_id", "model_b_id", "sampling_seed", "created_at", "finished_at",
                   "identity_leak", "identity_rules_version", "attack", "pool_item", "turns", "answered_at",
                   "creator_hash", "address_hash", "pairing")


@dataclass(frozen=True)
class Hit:
    bucket: str
    count: int
    retry_after_s: int


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


async def claim(session: AsyncSession, battle_id: uuid.UUID, key: str | None, voter: VoterIdentity | None,
                window_min: int, burst_s: int) -> Claim | None:
    row = (await session.execute(_CLAIM, {
        "battle": battle_id, "key": key, "window_min": window_min, "burst_s": burst_s,
        "session": voter.session_hash if voter else None, "address": voter.address_hash if voter else None,
        "network": voter.network_hash if voter else None})).first()
    return None if row is None else Claim(_battle(row), row)


def _hits(raw: list | None) -> list[Hit]:
    return [Hit(bucket, count, max(1, left)) for bucket, count, left in raw or []]


async def hit_only(session: AsyncSession, buckets: list[str], window_s: int) -> list[Hit]:
    """Counts a vote request that failed before the write, so that failures count against the limit too."""
    if not buckets:
        return []
    row = (await session.execute(_HITS_ONLY, {"buckets": buckets, "rate_window": window_s})).one()
    return _hits(row.hits)


def pair_rows(battle: Battle, vote: VoteIn) -> list[dict[str, Any]]:
    """The pair-count increments of one counted vote: each axis, overall and for the battle's prompt source."""
    lo, hi = sorted((battle.model_a_id, battle.model_b_id))
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


async def record(session: AsyncSession, battle: Battle, write: Write, buckets: list[str], limits: list[int],
                 window_s: int, counts: list[dict[str, Any]]) -> tuple[int | None, list[Hit]]:
    """Hits the rate counters and, if they allow it, stores the vote: (its id or None, the hits)."""
    voter, vote = write.voter, write.vote
    row = (await session.execute(_RECORD, {
        "buckets": buckets, "limits": limits, "rate_window": window_s, "battle": battle.id,
        "helpfulness": vote.helpfulness.value, "safety": vote.safety.value if vote.safety else None,
        "harm_category": vote.harm_category, "reason": vote.reason, "reason_public": vote.reason_public,
        "excluded": write.excluded, "created_at": write.created_at, "key": write.key, "read_s": write.read_s,
        "session": voter.session_hash if voter else None, "address": voter.address_hash if voter else None,
        "network": voter.network_hash if voter else None,
        "flags": json.dumps([{"rule": f.rule, "detail": f.detail} for f in write.flags]),
        "counts": json.dumps(counts)})).one()
    return row.vote_id, _hits(row.hits)


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
