"""One side of a battle answering one turn: the backend's text as it comes, then a storable answer row.

What a visitor may see of a failure is a short fixed text: a backend's own message can name hosts,
files or the model itself, so it stays in the logs.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from arena.identity import find_leak, rules_for
from arena.models import AnswerStatus, BattleAnswer
from arena.style import style_features
from core import metrics
from core.registry.models import Contestant
from core.secrets import backend_config
from core.settings import Settings
from inference import (
    BackendPool,
    GenerationResult,
    InferenceError,
    Message,
    SamplingParams,
    parse_backend_config,
)

log = logging.getLogger(__name__)

SHORT_ERRORS = {
    "timeout": "the model took too long to answer",
    "rate_limited": "the model is busy; try again later",
    "context_length_exceeded": "the prompt is too long for this model",
    "backend_unavailable": "the model is unavailable right now",
    "model_file_missing": "the model's files are not installed",
    "request_rejected": "the model's endpoint refused the request",
    "incomplete_generation": "the model stopped before finishing its answer",
}
FAILED = "the model failed to answer"
INVALID_CONFIG = "the model's configuration is not valid"
EMPTY = "the model returned an empty answer"


def storable(text: str) -> str:
    """A model's text as Postgres can store it: no NUL, no lone surrogate (not encodable as UTF-8)."""
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")


class _Clock:
    """Time to the first visible character, the same way for every backend (streaming or not)."""

    def __init__(self, on_text: Callable[[str], None]) -> None:
        self.started = time.perf_counter()
        self.ttft_s: float | None = None
        self._on_text = on_text

    def text(self, chunk: str) -> str:
        clean = storable(chunk)
        if clean:
            if self.ttft_s is None:
                self.ttft_s = time.perf_counter() - self.started
            self._on_text(clean)
        return clean


async def _generate(backend: object, messages: Sequence[Message], params: SamplingParams, clock: _Clock
                    ) -> GenerationResult:
    stream = getattr(backend, "stream", None)
    if stream is None:  # a backend without chunks (some test doubles): its whole text is one chunk
        result = await backend.generate(messages, params)  # type: ignore[attr-defined]
        clock.text(result.text)
        return result
    async with stream(messages, params) as chunks:
        async for chunk in chunks:
            clock.text(chunk)
    return chunks.result


def engine_copies(models: Sequence[Contestant]) -> list[int]:
    """The instance of its embedded engine each side uses (`inference.BackendPool.copies_for`): in a battle
    between two variants of one embedded model (a system prompt, a correction pass), side b gets a copy of
    its own. On one instance it would wait for side a's whole answer before its first token, a wait that
    also tells the visitor that both sides are one model. HTTP endpoints answer side by side anyway."""
    if sum(model.config.get("kind") == "llamacpp" for model in models) < 2:
        return [0] * len(models)
    try:
        return BackendPool.copies_for([parse_backend_config(dict(model.config)) for model in models])
    except ValidationError:  # that side fails in answer(), with its own error
        return [0] * len(models)


async def answer(
    pool: BackendPool, model: Contestant, messages: Sequence[Message], max_tokens: int, timeout_s: float,
    settings: Settings | None, on_text: Callable[[str], None], copy: int = 0,
) -> BattleAnswer:
    """The side's answer; its visible text goes to ``on_text`` chunk by chunk, already cleaned. ``copy``:
    which instance of an embedded engine it uses (`engine_copies`)."""
    clock = _Clock(on_text)
    try:
        # Building the backend is inside the try: a missing key or an unloadable engine fails this side only.
        backend = pool.get(parse_backend_config(backend_config(model, settings)), copy=copy)  # its decrypted key
        params = SamplingParams(max_tokens=max_tokens)
        result = await asyncio.wait_for(_generate(backend, messages, params, clock), timeout_s)
    except (InferenceError, TimeoutError, ValidationError) as exc:
        log.warning("arena.answer.failed", extra={"model": model.slug, "error": type(exc).__name__})
        metrics.count_backend_error("arena", exc)
        return BattleAnswer(status=AnswerStatus.error, text="", error=describe(exc))
    except Exception:  # a backend bug fails its side of the battle, never the request
        log.exception("arena.answer.crashed", extra={"model": model.slug})
        metrics.BACKEND_ERRORS.labels("arena", "crashed").inc()
        return BattleAnswer(status=AnswerStatus.error, text="", error=FAILED)
    return _row(model, result, clock)


def _row(model: Contestant, result: GenerationResult, clock: _Clock) -> BattleAnswer:
    text = storable(result.text)
    status = AnswerStatus.ok if text.strip() else AnswerStatus.error
    style = style_features(text)
    leak = find_leak(text, rules_for(model.slug, model.display_name, model.organisation))
    return BattleAnswer(
        identity_match=leak.matched if leak else None,
        style_length=style.length, style_headers=style.headers, style_lists=style.lists, style_bold=style.bold,
        status=status, text=text, error=None if status == AnswerStatus.ok else EMPTY,
        finish_reason=result.finish_reason, completion_tokens=result.completion_tokens,
        latency_s=result.latency_s, ttft_s=clock.ttft_s,
    )


def describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return SHORT_ERRORS["timeout"]
    if isinstance(exc, ValidationError):
        return INVALID_CONFIG
    return SHORT_ERRORS.get(getattr(exc, "code", ""), FAILED)
