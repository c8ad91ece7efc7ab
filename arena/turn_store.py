"""A turn's answers, stored in one round trip: the answers, the battle's new status, the turn's end and
the answering models' health, in one transaction.

Written as SQL text on the driver's own connection, like the vote (arena.vote_store): this runs once per
turn of every battle, and through the ORM it took nine statements (a locking read, two inserts, two
health updates, the battle's update, a read and an update of the turn). Here BEGIN, one statement, the
rare failure upserts and COMMIT go in one pipeline.
"""

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection

from arena.models import AnswerStatus, BattleAnswer, BattleStatus

# The battle is locked first (a housekeeping job may be failing it at the same moment); it moves on
# only from 'generating': a battle failed meanwhile keeps its status, and still gets its answers.
_STORE = """
WITH b AS (
  SELECT id, status FROM battles WHERE id = %(battle)s FOR UPDATE
),
ans AS (
  INSERT INTO battle_answers (battle_id, turn, side, status, text, error, finish_reason, completion_tokens,
                              latency_s, ttft_s, style_length, style_headers, style_lists, style_bold, identity_match)
  SELECT b.id, %(turn)s, r.side, r.status, r.text, r.error, r.finish_reason, r.completion_tokens, r.latency_s,
         r.ttft_s, r.style_length, r.style_headers, r.style_lists, r.style_bold, r.identity_match
    FROM b CROSS JOIN jsonb_to_recordset(CAST(%(answers)s AS jsonb))
      AS r(side text, status text, text text, error text, finish_reason text, completion_tokens int,
           latency_s float8, ttft_s float8, style_length int, style_headers int, style_lists int, style_bold int,
           identity_match text)
),
healthy AS (  -- _RESET, for the models that answered
  UPDATE arena_model_health h SET failures_in_row = 0 FROM b
   WHERE h.model_id = ANY(CAST(%(ok_models)s AS int[])) AND h.failures_in_row > 0
),
t AS (
  UPDATE battle_turns SET finished_at = CAST(%(now)s AS timestamptz) FROM b
   WHERE battle_turns.battle_id = b.id AND battle_turns.turn = %(turn)s
),
u AS (
  UPDATE battles SET
    identity_leak = coalesce(battles.identity_leak, false) OR CAST(%(leaked)s AS boolean),
    identity_rules_version = CAST(%(rules)s AS varchar),
    status = CASE WHEN b.status = 'generating' THEN CAST(%(status)s AS varchar) ELSE battles.status END,
    answered_at = CASE WHEN b.status <> 'generating' THEN battles.answered_at
                       WHEN %(all_ok)s THEN CAST(%(now)s AS timestamptz) END,
    finished_at = CASE WHEN b.status <> 'generating' THEN battles.finished_at
                       WHEN %(all_ok)s THEN NULL ELSE CAST(%(now)s AS timestamptz) END
  FROM b WHERE battles.id = b.id
  RETURNING battles.status
)
SELECT status FROM u
"""

# A success ends a model's failure run (writing nothing for a model that has none, the common case).
_RESET = """
UPDATE arena_model_health SET failures_in_row = 0
 WHERE model_id = ANY(CAST(%(models)s AS int[])) AND failures_in_row > 0
"""

# One more failure in a row for a model; at `limit` it is paused (a paused model keeps its first time).
_FAILURE = """
INSERT INTO arena_model_health AS h (model_id, failures_in_row, last_error, last_failure_at, paused_at)
VALUES (%(model)s, 1, %(error)s, CAST(%(now)s AS timestamptz),
        CASE WHEN %(limit)s <= 1 THEN CAST(%(now)s AS timestamptz) END)
ON CONFLICT (model_id) DO UPDATE SET
  failures_in_row = h.failures_in_row + 1, last_error = excluded.last_error, last_failure_at = excluded.last_failure_at,
  paused_at = coalesce(h.paused_at, CASE WHEN h.failures_in_row + 1 >= %(limit)s THEN excluded.last_failure_at END)
RETURNING failures_in_row, paused_at
"""


@dataclass(frozen=True)
class Failure:
    """A model whose answer failed: its run of failures in a row, and when it was paused (if it was)."""

    model_id: int
    error: str | None
    failures_in_row: int
    paused_at: datetime | None


@dataclass(frozen=True)
class Stored:
    status: BattleStatus | None  # None: the battle no longer exists
    failures: list[Failure]


def _answer_row(side: str, answer: BattleAnswer) -> dict[str, object]:
    return {"side": side, "status": answer.status.value, "text": answer.text, "error": answer.error,
            "finish_reason": answer.finish_reason, "completion_tokens": answer.completion_tokens,
            "latency_s": answer.latency_s, "ttft_s": answer.ttft_s,
            "style_length": answer.style_length or 0, "style_headers": answer.style_headers or 0,
            "style_lists": answer.style_lists or 0, "style_bold": answer.style_bold or 0,
            "identity_match": answer.identity_match}


async def store_turn(conn: AsyncConnection, battle_id: uuid.UUID, turn: int, answers: Sequence[BattleAnswer],
                     model_ids: Sequence[int], *, rules_version: str, failures_to_pause: int, now: datetime
                     ) -> Stored:
    """Stores both sides' answers of one turn (side a first) and commits: one round trip."""
    ok = [answer.status == AnswerStatus.ok for answer in answers]
    failed = [(model, answer.error) for model, answer, fine in zip(model_ids, answers, ok, strict=True) if not fine]
    async with conn.pipeline():
        await conn.execute("BEGIN")
        stored = await conn.execute(_STORE, {
            "battle": battle_id, "turn": turn, "now": now, "rules": rules_version,
            "answers": json.dumps([_answer_row(side, a) for side, a in zip("ab", answers, strict=True)]),
            "ok_models": [model for model, fine in zip(model_ids, ok, strict=True) if fine],
            "leaked": any(a.identity_match for a in answers), "all_ok": all(ok),
            "status": (BattleStatus.ready if all(ok) else BattleStatus.failed).value})
        runs = [await conn.execute(_FAILURE, _failure_params(model, error, failures_to_pause, now))
                for model, error in failed]
        await conn.execute("COMMIT")
    row = await stored.fetchone()
    failures = [_failure(model, error, await cursor.fetchone())
                for (model, error), cursor in zip(failed, runs, strict=True)]
    return Stored(BattleStatus(row[0]) if row else None, failures)


def _failure_params(model_id: int, error: str | None, limit: int, now: datetime) -> dict[str, object]:
    return {"model": model_id, "error": error, "now": now, "limit": limit}


def _failure(model_id: int, error: str | None, row: Any) -> Failure:
    run, paused_at = row
    return Failure(model_id, error, int(run), paused_at)


async def add_failure(conn: AsyncConnection, model_id: int, error: str | None, limit: int, now: datetime) -> Failure:
    """One more failure in a row, pausing the model at `limit`, in the connection's transaction."""
    cursor = await conn.execute(_FAILURE, _failure_params(model_id, error, limit, now))
    return _failure(model_id, error, await cursor.fetchone())


async def reset_failures(conn: AsyncConnection, model_ids: Sequence[int]) -> None:
    """Ends the failure runs of models that answered, in the connection's transaction."""
    await conn.execute(_RESET, {"models": list(model_ids)})
