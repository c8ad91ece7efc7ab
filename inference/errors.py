"""Typed inference failures, so callers can decide: retry, skip, or report.

Every error may carry `partial_text`: what the model had produced before it
failed. Evaluation stores it marked incomplete; the arena shows it as cut off.
"""

from __future__ import annotations

from typing import ClassVar


class InferenceError(Exception):
    """Base class of every failure a backend reports."""

    #: Whether trying the same request again later may succeed.
    retryable: ClassVar[bool] = False
    #: A stable snake_case name for APIs and logs.
    code: ClassVar[str] = "inference_error"

    def __init__(self, message: str, *, partial_text: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.partial_text = partial_text


class InferenceTimeout(InferenceError):
    """The backend did not answer within the configured time."""

    code = "timeout"
    retryable = True


class RateLimited(InferenceError):
    """The endpoint refused the request for now (HTTP 429)."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after_s: float | None = None, partial_text: str = "") -> None:
        super().__init__(message, partial_text=partial_text)
        self.retry_after_s = retry_after_s


class ContextTooLong(InferenceError):
    """The prompt does not fit the model's context window."""

    code = "context_length_exceeded"

    def __init__(
        self,
        message: str,
        *,
        prompt_tokens: int | None = None,
        context_limit: int | None = None,
        partial_text: str = "",
    ) -> None:
        super().__init__(message, partial_text=partial_text)
        self.prompt_tokens = prompt_tokens
        self.context_limit = context_limit


class BackendUnavailable(InferenceError):
    """The backend is down, unreachable, or failed to start."""

    code = "backend_unavailable"
    retryable = True


class ModelFileMissing(InferenceError):
    """A model file is absent; the message names the package that ships it."""

    code = "model_file_missing"

    def __init__(self, message: str, *, package: str) -> None:
        super().__init__(message)
        self.package = package


class RequestRejected(InferenceError):
    """The backend refused the request itself (bad key, unknown model, 4xx)."""

    code = "request_rejected"


class IncompleteGeneration(InferenceError):
    """The backend died mid-generation; `partial_text` holds what came before."""

    code = "incomplete_generation"
    retryable = True


class GenerationCancelled(InferenceError):
    """The caller stopped waiting (a worker shutting down); the work stopped at its next step."""
