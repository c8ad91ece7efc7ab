"""SQL of keys and fixed-window counters."""

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from sqlalchemy import case, func, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import utcnow
from core.keys.models import ApiKey, RateCounter


async def by_prefix(session: AsyncSession, prefix: str) -> ApiKey | None:
    return await session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))


async def by_id(session: AsyncSession, key_id: int) -> ApiKey | None:
    return await session.get(ApiKey, key_id)


async def list_all(session: AsyncSession) -> list[ApiKey]:
    return list(await session.scalars(select(ApiKey).order_by(ApiKey.id)))


async def touch(session: AsyncSession, key_id: int) -> None:
    await session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))


@dataclass(frozen=True)
class Hit:
    count: int  # hits in the current window, this one included
    retry_after_s: int  # seconds until the window ends


# The window is computed from the database's clock, so API processes on hosts with skewed clocks agree.
_WINDOW_START = text("to_timestamp(floor(extract(epoch FROM clock_timestamp()) / :window) * :window)")


async def hit(session: AsyncSession, bucket: str, window_s: int) -> Hit:
    """Counts one hit in ``bucket``'s current window, atomically (one upsert, row-locked by Postgres)."""
    start = _WINDOW_START.bindparams(window=window_s)
    stmt = insert(RateCounter).values(bucket=bucket, window_start=start, count=1)
    same_window = RateCounter.window_start == stmt.excluded.window_start
    stmt = stmt.on_conflict_do_update(
        index_elements=[RateCounter.bucket],
        set_={"count": case((same_window, RateCounter.count + 1), else_=1),
              "window_start": stmt.excluded.window_start},
    )
    left = func.extract("epoch", RateCounter.window_start) + window_s - func.extract("epoch", func.clock_timestamp())
    count, seconds_left = (await session.execute(stmt.returning(RateCounter.count, left))).one()
    return Hit(count, max(1, math.ceil(float(seconds_left))))


# In the driver's own parameter style, so that the vote path can send it on its raw connection too. A
# bucket named k times in one call counts k hits (the votes of one batch, arena.votes): Postgres refuses
# to update a row twice in one statement, so the buckets go in once each with their number of hits.
HIT_MANY_SQL = """
INSERT INTO rate_counters AS c (bucket, window_start, count)
SELECT bucket, to_timestamp(floor(extract(epoch FROM clock_timestamp()) / %(window)s) * %(window)s), n
  FROM unnest(CAST(%(buckets)s AS text[]), CAST(%(hits)s AS int[])) WITH ORDINALITY AS b(bucket, n, i)
 ORDER BY i
ON CONFLICT (bucket) DO UPDATE
  SET count = CASE WHEN c.window_start = excluded.window_start THEN c.count + excluded.count ELSE excluded.count END,
      window_start = excluded.window_start
RETURNING c.bucket, c.count,
  ceil(extract(epoch FROM c.window_start) + %(window)s - extract(epoch FROM clock_timestamp()))::int AS left_s
"""


def hit_params(buckets: Sequence[str], window_s: int) -> dict[str, Any]:
    """HIT_MANY_SQL's parameters: each distinct bucket once (in the order of first mention), with its hits."""
    hits = Counter(buckets)
    return {"buckets": list(hits), "hits": list(hits.values()), "window": window_s}


def hits_in_order(rows: Sequence[Any], buckets: Sequence[str]) -> list[Hit]:
    """HIT_MANY_SQL's rows, (bucket, count, left_s), as one Hit per entry of ``buckets``: a bucket named
    k times gets the counts its k hits would have had one after the other."""
    found = {bucket: (count, max(1, left_s)) for bucket, count, left_s in rows}
    left = Counter(buckets)  # hits of each bucket still to hand out, the last ones first
    hits = []
    for bucket in buckets:
        count, retry_after_s = found[bucket]
        hits.append(Hit(count - left[bucket] + 1, retry_after_s))
        left[bucket] -= 1
    return hits


async def count_hits(conn: psycopg.AsyncConnection, buckets: Sequence[str], window_s: int) -> list[Hit]:
    """Counts one hit in each bucket (a bucket named k times counts k), in the order given, on the
    driver's own connection in autocommit (core.db.driver_connection): one implicit transaction of their
    own, committed without waiting for the disk (a crash may forget the last hits, nothing else), so that
    an address's counter row is locked for microseconds. One round trip."""
    async with conn.pipeline():  # leaving the block sends the Sync: the statements go in one round trip
        # set_config(..., true), not SET LOCAL: the pipeline's statements share a transaction that is not a
        # block, where SET LOCAL still applies but also logs a WARNING in the server's log on every call.
        await conn.execute("SELECT set_config('synchronous_commit', 'off', true)")
        cursor = await conn.execute(HIT_MANY_SQL, hit_params(buckets, window_s))
    return hits_in_order(await cursor.fetchall(), buckets)


PURGE_SQL = "DELETE FROM rate_counters WHERE window_start < clock_timestamp() - make_interval(secs => %(older_than_s)s)"


async def purge_counters(conn: psycopg.AsyncConnection, older_than_s: int) -> None:
    """Drops counters whose window ended long ago (clients that went away)."""
    await conn.execute(PURGE_SQL, {"older_than_s": older_than_s})
