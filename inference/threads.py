"""Run blocking generation in a worker thread and stream its output to asyncio.

llama.cpp and PyTorch calls block for seconds; they run in an executor so the
event loop keeps serving other requests. The worker pushes items through a
queue with `call_soon_threadsafe`, and a `threading.Event` tells it to stop
when the consumer leaves early.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
import itertools
import threading
import time
from collections.abc import AsyncGenerator, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

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


class PriorityExecutor:
    """One worker thread that runs urgent jobs before the rest, FIFO within each class.

    Built on a one-thread `ThreadPoolExecutor` (its shutdown and exit handling stay as they were): every
    submission queues one trampoline there, and each trampoline runs whichever job is most urgent when the
    thread reaches it. A long job running on the thread can lend it to queued urgent jobs with
    `run_urgent()` between two of its own steps.

    `preempt=False` gives plain FIFO and makes `run_urgent()` do nothing (the behaviour before priorities;
    benchmarks compare the two).
    """

    def __init__(self, name: str, *, preempt: bool = True) -> None:
        self.preempt = preempt
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._guard = threading.Lock()
        self._jobs: list[tuple[int, int, Future[Any], Callable[[], Any]]] = []  # a heap
        self._order = itertools.count()
        self._urgent_queued = 0
        self._in_urgent = False  # an urgent job is running (only the worker thread reads or writes it)
        self.lent = 0  # how many urgent jobs ran inside another job (read by tests and benchmarks)

    def lane(self, urgent: bool) -> Executor:
        """An `Executor` view whose submissions have this urgency (for `loop.run_in_executor`)."""
        return _Lane(self, urgent and self.preempt)

    def submit(self, urgent: bool, fn: Callable[[], R]) -> Future[R]:
        urgent = urgent and self.preempt
        future: Future[R] = Future()
        with self._guard:
            heapq.heappush(self._jobs, (0 if urgent else 1, next(self._order), future, fn))
            self._urgent_queued += urgent
        try:
            self._pool.submit(self._run_next)
        except RuntimeError:  # shut down
            self._drop(future)
            raise
        return future

    def urgent_waiting(self) -> bool:
        """Whether an urgent job is queued (cheap; read between decode steps)."""
        return self._urgent_queued > 0

    def run_urgent(self) -> float:
        """Run the queued urgent jobs now, on the calling (worker) thread; the seconds that took.

        Only for a job running on this executor's thread, between two of its steps, with its own state
        left intact by whatever the urgent jobs do. Not re-entered from inside an urgent job.
        """
        if not self.preempt or not self.urgent_waiting() or self._in_urgent:
            return 0.0
        started = time.perf_counter()
        while self._run_one(urgent_only=True):
            self.lent += 1
        return time.perf_counter() - started

    def shutdown(self) -> None:
        """Wait for the running job; queued ones are cancelled."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._guard:
            jobs, self._jobs = self._jobs, []
            self._urgent_queued = 0
        for _, _, future, _ in jobs:
            future.cancel()

    def _run_next(self) -> None:
        self._run_one(urgent_only=False)  # finds nothing when its job already ran lent or inline

    def _run_one(self, *, urgent_only: bool) -> bool:
        with self._guard:
            if not self._jobs or (urgent_only and self._jobs[0][0] != 0):
                return False
            rank, _, future, fn = heapq.heappop(self._jobs)
            self._urgent_queued -= rank == 0
        if not future.set_running_or_notify_cancel():  # its awaiter gave up while it was queued
            return True
        outer, self._in_urgent = self._in_urgent, rank == 0
        try:
            future.set_result(fn())
        except BaseException as error:  # noqa: BLE001 - delivered to the awaiter
            future.set_exception(error)
        finally:
            self._in_urgent = outer
        return True

    def _drop(self, future: Future[Any]) -> None:
        with self._guard:
            self._jobs = [job for job in self._jobs if job[2] is not future]
            heapq.heapify(self._jobs)
            self._urgent_queued = sum(job[0] == 0 for job in self._jobs)


class _Lane(Executor):
    def __init__(self, owner: PriorityExecutor, urgent: bool) -> None:
        self._owner = owner
        self._urgent = urgent

    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Future[R]:
        return self._owner.submit(self._urgent, functools.partial(fn, *args, **kwargs))
