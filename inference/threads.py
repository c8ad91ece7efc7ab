"""Run blocking generation in a worker thread and stream its output to asyncio.

llama.cpp and PyTorch calls block for seconds; they run in an executor so the
event loop keeps serving other requests. The worker pushes items through a
queue with `call_soon_threadsafe`, and a `threading.Event` tells it to stop
when the consumer leaves early.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")

Emit = Callable[[T], None]
Work = Callable[[Emit[T], threading.Event], None]


class _Done:
    """Queue marker: the worker returned normally."""


class _Failed(Generic[T]):
    def __init__(self, error: BaseException) -> None:
        self.error = error


async def stream_from_thread(executor: Executor, work: Work[T]) -> AsyncGenerator[T, None]:
    """Yield what `work(emit, cancel)` emits from a thread of `executor`.

    An exception in `work` is re-raised here. When the consumer stops
    iterating, `cancel` is set; `work` should check it between steps.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | _Done | _Failed[T]] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: T | _Done | _Failed[T]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed under us: nobody is listening
            cancel.set()

    def run() -> None:
        try:
            work(put, cancel)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer, not lost in the thread
            put(_Failed(error))
        else:
            put(_Done())

    loop.run_in_executor(executor, run)
    try:
        while True:
            item = await queue.get()
            if isinstance(item, _Done):
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        cancel.set()
