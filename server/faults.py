"""What a request answers when the database is unreachable: 503 with Retry-After, one log line per kind.

Without this, a lost database reached the generic handler: a 500, a traceback from our handler and
another from uvicorn, and, because Starlette re-raises after its 500, uvicorn then closed the
keep-alive connection under the client (the "connections reset" of issue 13). Here the error never
leaves the app: before the answer has started it becomes a 503 in the house error shape, after (a
stream that was following a battle) the answer is ended cleanly and the client may reconnect.

Which errors mean "the database is gone" was found by stopping Postgres under load
(tests/faults/test_database_restart.py): SQLAlchemy's wrappers of psycopg's OperationalError (refused
connect, "server closed the connection", "terminating connection due to administrator command", "the
database system is shutting down / starting up"), a pool or connect timeout, psycopg's own errors on
the vote path's driver connection, and procrastinate's ConnectorException around them when a request
queues a job. Other database errors (a constraint, a bug in SQL) stay 500s: they are ours to fix.
"""

import logging
import time
from dataclasses import dataclass, field

from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.db import outage_kind
from server.middleware import send_error

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
QUIET_LOG_S = 30.0  # one log line per failure kind in this interval, with the count of those folded in
MESSAGE = "the database is unreachable right now; try again shortly"


@dataclass
class Gate:
    """Admits one event per kind per ``interval_s``, and says how many it held back since the last."""

    interval_s: float = QUIET_LOG_S
    _last: dict[object, float] = field(default_factory=dict)
    _held: dict[object, int] = field(default_factory=dict)

    def admit(self, kind: object) -> int | None:
        """None: hold this one back; else the number held back before it."""
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval_s) < self.interval_s:
            self._held[kind] = self._held.get(kind, 0) + 1
            return None
        self._last[kind] = now
        return self._held.pop(kind, 0)


@dataclass
class FaultLog:
    """One ``db.unavailable`` warning per failure kind per interval; the next says how many were folded."""

    gate: Gate = field(default_factory=Gate)

    def record(self, kind: str, path: str, error: BaseException, *, midstream: bool) -> None:
        folded = self.gate.admit(kind)
        if folded is not None:
            first_line = (str(error).splitlines() or [type(error).__name__])[0][:200]
            log.warning("db.unavailable", extra={"kind": kind, "path": path, "midstream": midstream,
                                                 "folded": folded, "error": first_line})


class DriverNoise(logging.Filter):
    """The drivers' own line for each pooled connection that a restart broke (psycopg's "error ignored
    terminating <pipeline>", SQLAlchemy's "Exception during reset or similar"): one per message per
    interval, with the count held back since, like ``db.unavailable``."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = Gate()

    def filter(self, record: logging.LogRecord) -> bool:
        folded = self.gate.admit((record.name, record.msg))
        if folded is None:
            return False
        record.folded = folded
        return True


# Loggers that write one line per broken connection: psycopg's, and the engine's pool's.
NOISY_LOGGERS = ("psycopg", "sqlalchemy.pool.impl.AsyncAdaptedQueuePool")


def _quiet_driver_noise() -> None:
    for name in NOISY_LOGGERS:  # process-wide, once: several apps (tests) share the loggers
        logger = logging.getLogger(name)
        if not any(isinstance(f, DriverNoise) for f in logger.filters):
            logger.addFilter(DriverNoise())


class DatabaseOutage:
    """ASGI middleware: an outage before the answer started is a 503; after, the answer just ends."""

    def __init__(self, app: ASGIApp, faults: FaultLog) -> None:
        self.app = app
        self.faults = faults

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = {"started": False, "ended": False}

        async def tracked(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["started"] = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                state["ended"] = True
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as error:  # only outages are answered here; the rest is re-raised
            kind = outage_kind(error)
            if kind is None:
                raise
            self.faults.record(kind, scope.get("path", ""), error, midstream=state["started"])
            await _answer(send, state)


async def _answer(send: Send, state: dict[str, bool]) -> None:
    if not state["started"]:
        await _send_unavailable(send)
    elif not state["ended"]:  # the client sees the stream end, and may reconnect with Last-Event-ID
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def _send_unavailable(send: Send) -> None:
    async def with_retry_after(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], (b"retry-after", str(RETRY_AFTER_S).encode())]
        await send(message)

    await send_error(with_retry_after, 503, "database_unavailable", MESSAGE)


def install_fault_handlers(app: FastAPI) -> None:
    """Adds the middleware that turns a lost database into a 503 with Retry-After.

    Added before the other middleware, so it sits inside them (headers, cookies and metrics still see
    the 503) and just outside the routes' exception handlers, whose generic one would make it a 500.
    """
    app.add_middleware(DatabaseOutage, faults=FaultLog())
    _quiet_driver_noise()
