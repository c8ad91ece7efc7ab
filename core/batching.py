"""Group commit: requests that arrive while a batch is being run go together in the next one.

A hot write path whose cost is mostly per round trip (the driver's and the event loop's work, not the
SQL) gets cheaper per request when requests share their round trips. There is no background task and
no timer: the first request to find no batch running lets the event loop turn (again while that
brought more requests) and runs a batch with whatever is waiting, often only itself, so a lone request
waits for nothing; requests that arrive meanwhile wait for it to end, and the first of them then runs
the next batch with all of them. Under load, batches grow by themselves to the number of requests
waiting; idle, a request costs what it cost alone.

One ``Batches`` per event loop and owner (e.g. a database engine): see ``for_owner``. ``fits`` decides
whether an item may join the items already in a batch (the others wait for a later one, in order);
``run`` gets a batch and returns one outcome per item, in order. An exception from ``run`` goes to every
request of that batch. A request cancelled while its batch runs does not cancel the batch: the others
still get their outcomes.
"""

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Batches(Generic[T, R]):
    def __init__(self, run: Callable[[list[T]], Awaitable[Sequence[R]]],
                 fits: Callable[[list[T], T], bool], most: int) -> None:
        self._run, self._fits, self._most = run, fits, most
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []
        self._turn = asyncio.Lock()  # one batch runs at a time; the lock's waiters are served in order

    async def submit(self, item: T) -> R:
        """The item's outcome, once a batch that holds it has run."""
        outcome: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, outcome))
        try:
            while not outcome.done():
                async with self._turn:
                    if not outcome.done():  # no earlier batch took it: this request runs the next one
                        await self._gather()
                        await asyncio.shield(asyncio.ensure_future(self._settle(self._take())))
        except asyncio.CancelledError:
            outcome.cancel()  # a later batch leaves it out; one already running still runs it to the end
            raise
        return outcome.result()

    async def _gather(self) -> None:
        """Lets the requests that are ready to run reach the queue before the batch is taken: one turn of
        the event loop, again while that brought more (requests answered by one batch often come back
        together; without this the first of them would run a batch of its own)."""
        seen = -1
        while seen != len(self._waiting) < self._most:
            seen = len(self._waiting)
            await asyncio.sleep(0)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        """The waiting items that fit together, oldest first (the oldest always: every batch moves on);
        items whose request was cancelled are dropped."""
        batch: list[tuple[T, asyncio.Future[R]]] = []
        items: list[T] = []
        left: list[tuple[T, asyncio.Future[R]]] = []
        for item, outcome in self._waiting:
            if outcome.done():
                continue
            if not batch or (len(batch) < self._most and self._fits(items, item)):
                batch.append((item, outcome))
                items.append(item)
            else:
                left.append((item, outcome))
        self._waiting = left
        return batch

    async def _settle(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            outcomes = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, outcome in batch:
                outcome.cancel()
            raise
        except Exception as error:  # noqa: BLE001  (handed to every request of the batch, which raises it)
            for _, outcome in batch:
                if not outcome.done():
                    outcome.set_exception(error)
            return
        for (_, outcome), result in zip(batch, outcomes, strict=True):
            if not outcome.done():
                outcome.set_result(result)


_BY_LOOP: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, weakref.WeakKeyDictionary]" = (
    weakref.WeakKeyDictionary())


def for_owner(owner: object, make: Callable[[], Batches[T, R]]) -> Batches[T, R]:
    """The owner's batches on the running event loop (made on first use): an asyncio lock and the waiting
    requests belong to one loop, and a test suite or a process with several loops keeps them apart."""
    mine = _BY_LOOP.setdefault(asyncio.get_running_loop(), weakref.WeakKeyDictionary())
    batches = mine.get(owner)
    if batches is None:
        batches = mine[owner] = make()
    return batches
