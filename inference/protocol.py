"""The one interface every backend implements, and a base class with the shared parts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Protocol, runtime_checkable

from inference.errors import InferenceError, RequestRejected
from inference.stream import GenerationStream, StreamEvent
from inference.types import GenerationResult, Message, SamplingParams

logger = logging.getLogger(__name__)

Conversation = Sequence[Message]
BatchItem = GenerationResult | InferenceError


@runtime_checkable
class Backend(Protocol):
    """Chat generation behind one interface.

    `stream()` is a plain method: it returns a `GenerationStream` at once and
    the work starts when iteration starts. `generate()` is the same without
    the chunks. `generate_batch()` never raises for one bad item: each slot
    holds a result or the typed error of that conversation.
    """

    @property
    def name(self) -> str: ...

    def stream(self, messages: Conversation, params: SamplingParams) -> GenerationStream: ...

    async def generate(self, messages: Conversation, params: SamplingParams) -> GenerationResult: ...

    async def generate_batch(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[BatchItem]: ...

    async def aclose(self) -> None: ...


class BaseBackend:
    """Shared behaviour: `generate` from `stream`, a bounded concurrent batch.

    Subclasses implement `_events()` and override `generate_batch` where the
    engine batches better than concurrent single requests do.
    """

    #: How many conversations of a batch run at once by default.
    batch_concurrency: int = 1

    @property
    def name(self) -> str:
        return type(self).__name__

    def stream(self, messages: Conversation, params: SamplingParams) -> GenerationStream:
        return GenerationStream(self._checked_events(list(messages), params))

    async def generate(self, messages: Conversation, params: SamplingParams) -> GenerationResult:
        return await self.stream(messages, params).collect()

    async def generate_batch(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[BatchItem]:
        limit = asyncio.Semaphore(max(1, self.batch_concurrency))

        async def one(conversation: Conversation) -> BatchItem:
            async with limit:
                return await capture(self.generate(conversation, params))

        return list(await asyncio.gather(*(one(c) for c in conversations)))

    async def aclose(self) -> None:
        return None

    def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        raise NotImplementedError

    async def _checked_events(
        self, messages: list[Message], params: SamplingParams
    ) -> AsyncIterator[StreamEvent]:
        validate_conversation(messages)
        events = self._events(messages, params)
        try:
            async for event in events:
                yield event
        except InferenceError as error:
            logger.warning(
                "inference.generation.failed",
                extra={"backend": self.name, "error_code": error.code, "retryable": error.retryable},
            )
            raise
        finally:
            # Closing explicitly, not at garbage collection, is what stops a
            # backend's worker thread or HTTP response as soon as the caller leaves.
            closer = getattr(events, "aclose", None)
            if closer is not None:
                await closer()


async def capture(call: Awaitable[GenerationResult]) -> BatchItem:
    """Await a generation and return its typed error instead of raising it."""
    try:
        return await call
    except InferenceError as error:
        return error


async def run_valid(
    conversations: Sequence[Conversation],
    run: Callable[[list[Conversation]], Awaitable[list[BatchItem]]],
) -> list[BatchItem]:
    """Run only the valid conversations, in one call; invalid ones keep their error in their slot.

    A call that fails as a whole (the engine or model file could not load) fails every valid item.
    """
    items: list[BatchItem | None] = [conversation_error(c) for c in conversations]
    todo = [i for i, item in enumerate(items) if item is None]
    if todo:
        try:
            done = await run([conversations[i] for i in todo])
        except InferenceError as error:
            done = [error] * len(todo)
        for index, item in zip(todo, done, strict=True):
            items[index] = item
    return [item for item in items if item is not None]


def conversation_error(messages: Sequence[Message]) -> InferenceError | None:
    """The error `validate_conversation` would raise, returned (for batch slots)."""
    try:
        validate_conversation(messages)
    except InferenceError as error:
        return error
    return None


def validate_conversation(messages: Sequence[Message]) -> None:
    """Reject conversations no backend can answer, before any work starts."""
    if not messages:
        raise RequestRejected("a conversation needs at least one message")
    if messages[-1].role != "user":
        raise RequestRejected("the last message of a conversation must be from the user")
