"""The pool keeps at most N engines, closes the least recently used idle one, never one mid-call.

The engines are test doubles: these tests are about the pool's bookkeeping, not about a model.
"""

from __future__ import annotations

import asyncio

import pytest

from inference import BackendPool, GenerationResult, Message, SamplingParams
from inference.config import TransformersConfig
from inference.protocol import BaseBackend
from inference.stream import StreamEnd

PARAMS = SamplingParams(max_tokens=4)
HELLO = [Message("user", "hello")]


class EngineForTests(BaseBackend):
    """Streams two chunks; waits on `gate` first when one is given, so a call can be held open."""

    def __init__(self, config: TransformersConfig, gate: asyncio.Event | None) -> None:
        self.model = config.model
        self.gate = gate
        self.closed = False

    async def _events(self, messages, params):
        assert not self.closed, "a call ran on a closed engine"
        if self.gate is not None:
            await self.gate.wait()
        assert not self.closed, "the engine was closed under a running call"
        yield self.model
        yield "!"
        yield StreamEnd("stop", 1, 2)

    async def aclose(self) -> None:
        self.closed = True


class EnginesForTests:
    """The pool's engine factory: records every engine it built, in order."""

    def __init__(self) -> None:
        self.built: list[EngineForTests] = []
        self.gates: dict[str, asyncio.Event] = {}

    def __call__(self, config: TransformersConfig) -> EngineForTests:
        engine = EngineForTests(config, self.gates.get(config.model))
        self.built.append(engine)
        return engine

    def of(self, model: str) -> list[EngineForTests]:
        return [e for e in self.built if e.model == model]


def config(name: str) -> dict:
    return {"kind": "transformers", "model": name, "device": "cpu"}


@pytest.fixture
async def engines():
    return EnginesForTests()


async def test_the_least_recently_used_engine_is_closed_to_make_room(engines) -> None:
    pool = BackendPool(max_engines=2, engine_factory=engines)
    try:
        a, b = pool.get(config("a")), pool.get(config("b"))
        await a.generate(HELLO, PARAMS)  # a is now more recent than b
        pool.get(config("c"))
        await asyncio.sleep(0)
        assert pool.engine_count == 2
        assert engines.of("b")[0].closed and not engines.of("a")[0].closed
        # A handle whose engine was evicted loads it again on its next call.
        result = await b.generate(HELLO, PARAMS)
        assert result.text == "b!" and len(engines.of("b")) == 2
        await asyncio.sleep(0)
        assert pool.engine_count == 2 and engines.of("a")[0].closed  # a was the least recent then
        assert not engines.of("c")[0].closed
    finally:
        await pool.aclose()
    assert all(e.closed for e in engines.built)


async def test_an_engine_in_use_is_never_closed_under_its_call(engines) -> None:
    engines.gates["busy"] = gate = asyncio.Event()
    pool = BackendPool(max_engines=1, engine_factory=engines)
    try:
        busy = pool.get(config("busy"))
        call = asyncio.create_task(busy.generate(HELLO, PARAMS))
        await asyncio.sleep(0.01)  # the call is waiting inside the engine
        other = await pool.get(config("other")).generate(HELLO, PARAMS)
        assert other.text == "other!"
        assert not engines.of("busy")[0].closed, "closed while a call was running"
        gate.set()
        result = await call
        await asyncio.sleep(0)
        assert isinstance(result, GenerationResult) and result.text == "busy!"
        assert engines.of("busy")[0].closed, "an evicted engine is closed once its last call ends"
        assert pool.engine_count == 1
    finally:
        await pool.aclose()


async def test_a_busy_engine_is_kept_when_an_idle_one_can_go(engines) -> None:
    engines.gates["busy"] = gate = asyncio.Event()
    pool = BackendPool(max_engines=2, engine_factory=engines)
    try:
        busy = pool.get(config("busy"))
        pool.get(config("idle"))
        stream = busy.stream(HELLO, PARAMS)
        first = asyncio.create_task(anext(stream))
        await asyncio.sleep(0.01)
        pool.get(config("new"))  # "busy" is least recently used, but it is streaming
        await asyncio.sleep(0)
        assert engines.of("idle")[0].closed and not engines.of("busy")[0].closed
        gate.set()
        assert await first == "busy"
        assert (await stream.collect()).text == "busy!" and stream.result.completion_tokens == 2
    finally:
        await pool.aclose()


async def test_evict_closes_a_retired_models_engine(engines) -> None:
    pool = BackendPool(max_engines=4, engine_factory=engines)
    try:
        pool.get(config("a"))
        pool.get(config("b"))
        await pool.evict(config("a"))
        assert engines.of("a")[0].closed and pool.engine_count == 1
        await pool.evict(config("never-loaded"))  # nothing to close is fine
        await pool.evict({"kind": "llamacpp", "model": "smollm2-135m-instruct"})
    finally:
        await pool.aclose()


def test_the_bound_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_engines"):
        BackendPool(max_engines=0)


async def test_forgetting_a_retired_models_engine_closes_it(engines) -> None:
    from types import SimpleNamespace

    from server.engines import forget_model_engine

    pool = BackendPool(max_engines=4, engine_factory=engines)
    runtime = SimpleNamespace(backends=pool)
    try:
        pool.get(config("retired"))
        await forget_model_engine(runtime, SimpleNamespace(slug="retired", config=config("retired")))
        assert engines.of("retired")[0].closed and pool.engine_count == 0
        # A stored config that no longer validates never loaded an engine: nothing to do, no error.
        await forget_model_engine(runtime, SimpleNamespace(slug="odd", config={"kind": "nope"}))
    finally:
        await pool.aclose()
