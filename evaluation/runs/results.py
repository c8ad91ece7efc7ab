"""Turn whatever a backend returned into a status and a text.

Backends are written by another team; we read their results duck-typed so that the evaluation
domain does not import ``inference``.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from evaluation.types import Status

_VALID = {status.value for status in Status}


@dataclass(frozen=True)
class Normalized:
    status: Status
    text: str | None
    error: str | None = None


def normalize_result(result: object) -> Normalized:
    """Map a result or an exception to a status; only non-blank text is ``ok``."""
    if isinstance(result, BaseException):
        return _from_exception(result)
    declared = getattr(result, "status", None)
    error = getattr(result, "error", None)
    text = getattr(result, "text", None)
    if declared is not None and str(getattr(declared, "value", declared)) in _VALID:
        status = Status(str(getattr(declared, "value", declared)))
        if status is not Status.OK:
            return Normalized(status, text, error)
    if error:
        return Normalized(Status.BACKEND_ERROR, text, str(error))
    if text is None or not str(text).strip():
        return Normalized(Status.EMPTY, text)
    return Normalized(Status.OK, str(text))


def _from_exception(exc: BaseException) -> Normalized:
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Normalized(Status.TIMEOUT, None, "timeout")
    return Normalized(Status.BACKEND_ERROR, None, f"{type(exc).__name__}: {exc}")
