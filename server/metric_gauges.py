"""What ``/metrics`` reads from the database when it is scraped: battles by status and the job queue.

These are facts about the shared database, not about one process, so the process that answers a
scrape reads them itself (they are not kept in prometheus_client's per-process files). A reading is
kept a few seconds: several Prometheus servers, or a scrape of every API process, cost one read
each interval. Every query stays cheap as the tables grow: battles still in play (generating, ready:
a few, bounded by the housekeeping job and the vote window) are counted exactly through the status
index; the finished ones grow by a million a day at the target load (an exact count took about 180 ms
at a million rows on the 2-core development machine), so their numbers are Postgres's own planner estimate (row count times each status's
share, refreshed by autovacuum's ANALYZE), a constant-time read. The job query reads only waiting and
running jobs through procrastinate's partial index. A database that does not answer within a second
leaves these gauges out and sets ``libra_metrics_database_up`` to 0; the process's own metrics are
served all the same.
"""

import asyncio
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client.core import GaugeMetricFamily, Metric
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from arena.models import BattleStatus
from server.workers import EVALUATION_QUEUES, SHORT_QUEUES

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 1.0
QUIET_LOG_S = 60.0

LIVE_STATUSES = (BattleStatus.generating, BattleStatus.ready)
LIVE_BATTLES_SQL = text("SELECT status, count(*) AS n FROM battles WHERE status IN ('generating', 'ready') "
                        "GROUP BY status")
# reltuples is -1 until the table's first ANALYZE; most_common_vals holds every status (there are five).
ESTIMATE_SQL = text("""
    SELECT c.reltuples AS rows, s.most_common_vals::text::text[] AS vals, s.most_common_freqs AS freqs
    FROM pg_class AS c
    JOIN pg_stats AS s ON s.schemaname = current_schema() AND s.tablename = c.relname AND s.attname = 'status'
    WHERE c.relname = 'battles' AND c.relnamespace = current_schema()::regnamespace
""")
# A job waits from its deferral (or, when scheduled or retried, from the time it was due); jobs due
# later are not waiting yet.
QUEUE_SQL = text("""
    SELECT j.queue_name AS queue,
           count(*) FILTER (WHERE j.status = 'todo') AS waiting,
           count(*) FILTER (WHERE j.status = 'doing') AS running,
           EXTRACT(EPOCH FROM now() - min(coalesce(j.scheduled_at, e.at)) FILTER (WHERE j.status = 'todo'))
               AS oldest_s
    FROM procrastinate_jobs AS j
    LEFT JOIN procrastinate_events AS e ON e.job_id = j.id AND e.type = 'deferred' AND j.status = 'todo'
    WHERE j.status IN ('todo', 'doing') AND (j.scheduled_at IS NULL OR j.scheduled_at <= now())
    GROUP BY j.queue_name
""")


@dataclass(frozen=True)
class QueueRow:
    waiting: int
    running: int
    oldest_s: float


@dataclass(frozen=True)
class Reading:
    live_battles: dict[str, int]
    estimated_battles: dict[str, float]  # empty until the planner has statistics
    queues: dict[str, QueueRow]


async def read(sessions: async_sessionmaker[AsyncSession]) -> Reading:
    async with sessions() as session:
        live = {row.status: int(row.n) for row in await session.execute(LIVE_BATTLES_SQL)}
        stats = (await session.execute(ESTIMATE_SQL)).first()
        queues = {row.queue: QueueRow(int(row.waiting), int(row.running), float(row.oldest_s or 0.0))
                  for row in await session.execute(QUEUE_SQL)}
    estimated = {}
    if stats is not None and stats.rows >= 0 and stats.vals:
        shares = dict(zip(stats.vals, stats.freqs, strict=True))
        estimated = {status.value: round(stats.rows * shares.get(status.value, 0.0)) for status in BattleStatus}
    return Reading(live, estimated, queues)


def families(reading: Reading | None) -> Iterator[Metric]:
    up = GaugeMetricFamily("libra_metrics_database_up",
                           "1 if this scrape could read the database gauges below, 0 if not.")
    up.add_metric([], 0 if reading is None else 1)
    yield up
    if reading is None:
        return
    live = GaugeMetricFamily("libra_battles", "Battles in play (generating, ready), counted exactly, by status.",
                             labels=["status"])
    for status in LIVE_STATUSES:  # 0 included: an absent series is not a zero
        live.add_metric([status.value], reading.live_battles.get(status.value, 0))
    yield live
    if reading.estimated_battles:
        estimated = GaugeMetricFamily(
            "libra_battles_estimated", "All battles by status, as Postgres's planner estimates them (row count "
            "times each status's share at the latest ANALYZE).", labels=["status"])
        for status, rows in reading.estimated_battles.items():
            estimated.add_metric([status], rows)
        yield estimated
    yield from _queue_families(reading.queues)


def _queue_families(queues: dict[str, QueueRow]) -> Iterable[Metric]:
    names = sorted(set(EVALUATION_QUEUES + SHORT_QUEUES) | set(queues))
    waiting = GaugeMetricFamily("libra_jobs_waiting", "Jobs due and waiting for a worker, by queue.",
                                labels=["queue"])
    running = GaugeMetricFamily("libra_jobs_running", "Jobs a worker is running, by queue.", labels=["queue"])
    oldest = GaugeMetricFamily("libra_jobs_oldest_waiting_seconds",
                               "How long the oldest waiting job of a queue has waited (0: none waits).",
                               labels=["queue"])
    for name in names:
        row = queues.get(name, QueueRow(0, 0, 0.0))
        waiting.add_metric([name], row.waiting)
        running.add_metric([name], row.running)
        oldest.add_metric([name], max(0.0, row.oldest_s))
    return (waiting, running, oldest)


@dataclass
class DatabaseGauges:
    """The latest reading, kept ``ttl_s`` seconds; one read at a time however many scrapes arrive."""

    ttl_s: float = 5.0
    _reading: Reading | None = None
    _read_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _warned_at: float = float("-inf")

    async def current(self, sessions: async_sessionmaker[AsyncSession]) -> Reading | None:
        async with self._lock:
            if time.monotonic() - self._read_at >= self.ttl_s:
                self._reading = await self._read(sessions)
                self._read_at = time.monotonic()
            return self._reading

    async def _read(self, sessions: async_sessionmaker[AsyncSession]) -> Reading | None:
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                return await read(sessions)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the gauges out of this scrape
            if time.monotonic() - self._warned_at >= QUIET_LOG_S:
                self._warned_at = time.monotonic()
                log.warning("metrics.database.unreadable", extra={"error": type(exc).__name__})
            return None
