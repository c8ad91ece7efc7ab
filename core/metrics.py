"""The service's Prometheus metrics: defined once per process, as prometheus_client intends.

These are the one kind of module-level state the project keeps. A metric is a process-wide fact
(requests answered, votes stored), not configuration, and prometheus_client is built around
metrics that are created once at import: in its multi-process mode (``PROMETHEUS_MULTIPROC_DIR``
set before the process starts, as ``libra serve --workers N`` does) each process writes its
values to files of its own in that folder, and the process that answers a scrape adds them up.

Labels stay bounded: routes are path templates, statuses are classes (``2xx``), error kinds are
the backends' own codes. Gauges that describe the database (battles by status, the job queue) are
not here: they are read at scrape time by ``server.observability``.
"""

import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from pydantic import ValidationError
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

HTTP_REQUESTS = Counter(
    "libra_http_requests_total", "HTTP requests answered, by route template, method and status class.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "libra_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer (streams included), by route template, "
    "method and status class.",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)
VOTES = Counter(
    "libra_votes_total", "Arena votes: counted, stored but excluded from the ratings, or replays of a "
    "stored vote (a retried request with the same Idempotency-Key).", ["outcome"],
)
EVALUATION_ITEMS = Counter(
    "libra_evaluation_items_total", "Evaluation items stored by the runner, by stage (generated, scored) "
    "and status (ok, empty, timeout, backend_error, ...); its rate is the items per second.",
    ["stage", "status"],
)
BACKEND_ERRORS = Counter(
    "libra_backend_errors_total", "Model backend failures, by where they happened (arena, evaluation) and kind.",
    ["source", "kind"],
)
JOBS = Counter(
    "libra_jobs_total", "Jobs finished by this process's worker slots, by task and outcome.", ["task", "outcome"],
)
JOB_DURATION = Histogram(
    "libra_job_duration_seconds", "Run time of a job, by task.", ["task"],
    buckets=(0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 4 * 3600.0, 12 * 3600.0),
)
# Pool gauges follow each engine's check-outs; in multi-process mode the live processes' values add up.
DB_POOL_CHECKED_OUT = Gauge(
    "libra_db_pool_checked_out", "Database connections checked out of the SQLAlchemy pools right now.",
    multiprocess_mode="livesum",
)
DB_POOL_SIZE = Gauge(
    "libra_db_pool_size", "Configured size of the SQLAlchemy pools (the most connections each opens).",
    multiprocess_mode="livesum",
)

_KIND = re.compile(r"[a-z][a-z0-9_]{0,39}")


def error_kind(exc: BaseException) -> str:
    """A bounded label for a backend failure: the backend's own ``code``, ``timeout``, ``invalid_config``
    (a model's stored configuration no longer parses) or ``other``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ValidationError):
        return "invalid_config"
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and _KIND.fullmatch(code) else "other"


def count_backend_error(source: str, exc: BaseException, kind: str | None = None) -> None:
    BACKEND_ERRORS.labels(source, kind or error_kind(exc)).inc()


def watch_pool(engine: AsyncEngine) -> None:
    """Follow an engine's pool in the pool gauges (once per engine; a second call does nothing)."""
    pool = engine.sync_engine.pool
    if event.contains(pool, "checkout", _checked_out):
        return
    event.listen(pool, "checkout", _checked_out)
    event.listen(pool, "checkin", _checked_in)
    size = pool.size() if hasattr(pool, "size") else 0
    DB_POOL_SIZE.inc(size)
    # dispose() at shutdown: the engine's connections are gone, so is its share of the size.
    event.listen(engine.sync_engine, "engine_disposed", lambda _engine: DB_POOL_SIZE.dec(size))


_COUNTED = "libra_metrics_checked_out"


def _checked_out(_dbapi_connection: object, record: Any, _proxy: object) -> None:
    record.info[_COUNTED] = True
    DB_POOL_CHECKED_OUT.inc()


def _checked_in(_dbapi_connection: object, record: Any) -> None:
    # Only a check-out this gauge counted is taken back: a connection already out when the pool was first
    # watched (a battle being generated during the first scrape) would otherwise push the gauge below zero.
    if record is not None and record.info.pop(_COUNTED, False):
        DB_POOL_CHECKED_OUT.dec()
