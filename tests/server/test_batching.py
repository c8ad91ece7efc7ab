"""core.batching: requests that arrive while a batch runs go together in the next one, nothing is lost,
and a failure or a cancelled request touches only what it must."""

import asyncio

import pytest

from core.batching import Batches, for_owner


class Recorder:
    """A batch runner that records its batches and holds each one until the test lets it go."""

    def __init__(self, fail_on: object = None) -> None:
        self.batches: list[list[object]] = []
        self.fail_on = fail_on
        self.release = asyncio.Event()

    async def run(self, items: list[object]) -> list[object]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_on in items:
            raise RuntimeError(f"batch with {self.fail_on} failed")
        return [f"done {item}" for item in items]


def any_fit(batch: list[object], item: object) -> bool:
    return True


async def test_requests_that_arrive_while_a_batch_runs_go_together_in_the_next() -> None:
    recorder = Recorder()
    batches = Batches(recorder.run, any_fit, most=10)
    first = asyncio.create_task(batches.submit(0))
    await asyncio.sleep(0)  # the first batch starts with the first request alone
    rest = [asyncio.create_task(batches.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0)
    recorder.release.set()
    assert await asyncio.gather(first, *rest) == [f"done {i}" for i in range(6)]
    assert recorder.batches == [[0], [1, 2, 3, 4, 5]]


async def test_requests_ready_in_the_same_turn_of_the_loop_share_the_first_batch() -> None:
    """Requests answered by one batch often come back together: the first of them to reach the queue
    lets the others reach it too before it takes its batch, instead of running a batch of its own."""
    recorder = Recorder()
    recorder.release.set()
    batches = Batches(recorder.run, any_fit, most=10)
    assert await asyncio.gather(*(batches.submit(i) for i in range(6))) == [f"done {i}" for i in range(6)]
    assert recorder.batches == [[0, 1, 2, 3, 4, 5]]


async def test_items_that_do_not_fit_wait_for_a_later_batch_in_order() -> None:
    recorder = Recorder()
    recorder.release.set()

    def one_per_letter(batch: list[str], item: str) -> bool:
        return item[0] not in {other[0] for other in batch}

    batches = Batches(recorder.run, one_per_letter, most=3)
    items = ["a1", "b1", "a2", "c1", "d1", "a3"]
    answers = await asyncio.gather(*(batches.submit(item) for item in items))
    assert answers == [f"done {item}" for item in items]
    assert recorder.batches == [["a1", "b1", "c1"], ["a2", "d1"], ["a3"]]


async def test_a_failed_batch_fails_its_own_requests_and_the_next_batch_runs() -> None:
    recorder = Recorder(fail_on=2)
    batches = Batches(recorder.run, lambda batch, item: len(batch) < 2, most=10)
    recorder.release.set()
    results = await asyncio.gather(*(batches.submit(i) for i in range(5)), return_exceptions=True)
    assert recorder.batches == [[0, 1], [2, 3], [4]]
    assert results[:2] == ["done 0", "done 1"] and results[4] == "done 4"
    assert all(isinstance(r, RuntimeError) and "batch with 2" in str(r) for r in results[2:4])


async def test_a_cancelled_request_does_not_cancel_the_batch_it_runs() -> None:
    recorder = Recorder()
    batches = Batches(recorder.run, any_fit, most=10)
    leader = asyncio.create_task(batches.submit("leader"))
    await asyncio.sleep(0)
    follower = asyncio.create_task(batches.submit("follower"))
    await asyncio.sleep(0)
    leader.cancel()  # e.g. its client went away while the batch it runs was being written
    await asyncio.sleep(0)
    recorder.release.set()
    assert await follower == "done follower"
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert recorder.batches == [["leader"], ["follower"]]


async def test_each_event_loop_and_owner_has_batches_of_its_own() -> None:
    owner, other = type("Owner", (), {})(), type("Owner", (), {})()
    made = for_owner(owner, lambda: Batches(Recorder().run, any_fit, most=1))
    assert for_owner(owner, lambda: pytest.fail("made twice")) is made
    assert for_owner(other, lambda: Batches(Recorder().run, any_fit, most=1)) is not made

    def in_another_loop() -> Batches:
        async def get() -> Batches:
            return for_owner(owner, lambda: Batches(Recorder().run, any_fit, most=1))
        return asyncio.run(get())

    assert await asyncio.to_thread(in_another_loop) is not made
