"""`BackendPool`: the one place backends are built, shared resources held.

Build it once at application startup (lifespan) and close it at shutdown. It
owns the HTTP clients of the endpoints (`inference.http_clients`), the lazily loaded llama.cpp models, the
concurrency limits of the HTTP endpoints (`_limit`), and the GPU engines (loaded once per
config: a vLLM engine takes the whole GPU).

Engines are bounded: at most ``max_engines`` stay loaded, and the least recently used idle one is
closed to make room. `get` hands out an `EngineHandle`, not the engine itself: every call borrows
the engine for its duration, so an engine is never closed under a running call (one evicted while
busy is closed when its last call ends), and a handle whose engine was evicted loads it again.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from inference.config import (
    BackendConfig,
    LlamaCppConfig,
    OpenAIConfig,
    TransformersConfig,
    VLLMConfig,
    parse_backend_config,
)
from inference.credentials import resolve_api_key
from inference.egress import parse_networks
from inference.http_clients import EndpointClients
from inference.llamacpp.backend import LlamaCppBackend
from inference.llamacpp.files import default_cache_dir
from inference.llamacpp.runtime import ModelCache, ModelKey
from inference.protocol import Backend, BatchItem, Conversation
from inference.stream import GenerationStream, StreamEnd, StreamEvent
from inference.types import GenerationResult, SamplingParams

logger = logging.getLogger(__name__)

EngineConfig = VLLMConfig | TransformersConfig


@dataclass
class _Slot:
    engine: Backend
    in_flight: int = 0
    evicted: bool = False


class BackendPool:
    """Hands out backends for model configs; shares what they can share."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        http_client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
        max_engines: int = 8,
        engine_factory: Callable[[EngineConfig], Backend] | None = None,
        egress_allow: str | Sequence[str] | None = None,
    ) -> None:
        if max_engines < 1:
            raise ValueError("max_engines must be at least 1")
        self._models = ModelCache(cache_dir or default_cache_dir())
        self._environ = environ
        # Submitted endpoints ("egress": "public") get clients whose connections are checked.
        if egress_allow is None:
            egress_allow = (os.environ if environ is None else environ).get("LIBRA_EGRESS_ALLOW", "")
        # One HTTP client per endpoint unless one is given for all, closed when idle (inference.http_clients).
        self.http_clients = EndpointClients(parse_networks(egress_allow), http_client)
        # Held by the backends that use them: a limit nobody holds is dropped (_limit).
        self._limits: weakref.WeakValueDictionary[tuple[object, ...], asyncio.Semaphore] = (
            weakref.WeakValueDictionary())
        self._max_engines = max_engines
        self._build = engine_factory or _build_engine
        self._engines: OrderedDict[EngineConfig, _Slot] = OrderedDict()  # least recently used first
        self._closing: set[asyncio.Task[None]] = set()
        self._close_later: list[Backend] = []  # evicted with no running event loop

    @property
    def engine_count(self) -> int:
        """Engines loaded now (evicted ones still finishing a call not counted)."""
        return len(self._engines)

    def get(self, config: BackendConfig | Mapping[str, Any], *, copy: int = 0) -> Backend:
        """The backend for a config (a validated config or its dict). An embedded model's `copy` > 0 is
        another instance of it (`copies_for`); other kinds serve concurrent calls anyway and ignore it."""
        config = _validated(config)
        if isinstance(config, LlamaCppConfig):
            return LlamaCppBackend(config, self._models.get(_model_key(config, copy)))
        if isinstance(config, OpenAIConfig):
            return self._openai(config)
        self._slot(config)  # built now, so that a config that cannot load fails here
        return EngineHandle(self, config)

    @staticmethod
    def copies_for(configs: Sequence[BackendConfig]) -> list[int]:
        """The `copy` of `get` for each of several configs called at the same time: 0, except for a config
        whose embedded model an earlier one of them also uses, which gets the next copy. One instance
        decodes one call at a time, so the second of two arena sides on one model would otherwise show
        nothing until the first had finished."""
        seen: dict[ModelKey, int] = {}
        copies = []
        for config in configs:
            if not isinstance(config, LlamaCppConfig):
                copies.append(0)
                continue
            key = _model_key(config)
            copies.append(seen.get(key, 0))
            seen[key] = copies[-1] + 1
        return copies

    async def evict(self, config: BackendConfig | Mapping[str, Any]) -> None:
        """Close the engine of a config (a retired model); one in use is closed when its calls end."""
        config = _validated(config)
        if isinstance(config, (VLLMConfig, TransformersConfig)) and (slot := self._engines.pop(config, None)):
            self._retire(config, slot)
        await self._settle()

    async def aclose(self) -> None:
        slots, self._engines = list(self._engines.values()), OrderedDict()
        for slot in slots:
            await slot.engine.aclose()
        await self._settle()
        # Joining the model threads blocks until their current token loop ends.
        await asyncio.to_thread(self._models.close)
        await self.http_clients.aclose()

    def _openai(self, config: OpenAIConfig) -> Backend:
        from inference.http_backend import OpenAIBackend

        endpoint = str(config.base_url)
        key = resolve_api_key(config, self._environ)
        client = self.http_clients.for_endpoint(endpoint, checked=config.egress == "public")
        return OpenAIBackend(config, client, self._limit(config, key), key)

    def _limit(self, config: OpenAIConfig, key: SecretStr | None) -> asyncio.Semaphore:
        """The concurrency limit that the models of one endpoint share when they declare it alike: the same
        egress, key and max_concurrency. Keyed by all of them, so a submitted config naming the maintainers'
        endpoint never sets or takes the limit of their models, and a changed max_concurrency takes effect
        with the next backend built (calls already running keep the limit they started under)."""
        account = hashlib.sha256(key.get_secret_value().encode()).hexdigest() if key else None
        name = (config.egress, str(config.base_url), account, config.max_concurrency)
        limit = self._limits.get(name)
        if limit is None:
            limit = self._limits[name] = asyncio.Semaphore(config.max_concurrency)
        return limit

    def _slot(self, config: EngineConfig) -> _Slot:
        slot = self._engines.get(config)
        if slot is None:
            self._make_room()
            slot = self._engines[config] = _Slot(self._build(config))
            logger.info("inference.pool.engine.created", extra={"kind": config.kind, "model": config.model})
        self._engines.move_to_end(config)
        return slot

    def _make_room(self) -> None:
        while len(self._engines) >= self._max_engines:
            # The least recently used idle engine; if every one is busy, the least recently used
            # one leaves the pool now and is closed when its last call ends.
            idle = [c for c, s in self._engines.items() if s.in_flight == 0]
            victim = idle[0] if idle else next(iter(self._engines))
            self._retire(victim, self._engines.pop(victim))

    def _retire(self, config: EngineConfig, slot: _Slot) -> None:
        slot.evicted = True
        logger.info("inference.pool.engine.evicted", extra={"kind": config.kind, "model": config.model})
        if slot.in_flight == 0:
            self._close_soon(slot.engine)

    def _close_soon(self, engine: Backend) -> None:
        try:
            task = asyncio.get_running_loop().create_task(engine.aclose())
        except RuntimeError:  # no running loop: closed by the next evict() or aclose()
            self._close_later.append(engine)
            return
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def _settle(self) -> None:
        engines, self._close_later = self._close_later, []
        for engine in engines:
            await engine.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    @contextmanager
    def _borrowed(self, config: EngineConfig) -> Iterator[Backend]:
        slot = self._slot(config)
        slot.in_flight += 1
        try:
            yield slot.engine
        finally:
            slot.in_flight -= 1
            if slot.evicted and slot.in_flight == 0:
                self._close_soon(slot.engine)


def _model_key(config: LlamaCppConfig, copy: int = 0) -> ModelKey:
    """The loaded instance a config runs on: configs that differ only in prompts share it."""
    return ModelKey(config.model, config.n_ctx, config.n_threads, copy)


class EngineHandle:
    """An engine as `BackendPool.get` hands it out: each call borrows the pool's current engine.

    Closing a handle closes nothing: the pool owns the engine.
    """

    def __init__(self, pool: BackendPool, config: EngineConfig) -> None:
        self._pool, self._config = pool, config

    @property
    def name(self) -> str:
        return f"{self._config.kind}:{self._config.model}"

    def stream(self, messages: Conversation, params: SamplingParams) -> GenerationStream:
        return GenerationStream(self._relay(list(messages), params))

    async def generate(self, messages: Conversation, params: SamplingParams) -> GenerationResult:
        with self._pool._borrowed(self._config) as engine:
            return await engine.generate(messages, params)

    async def generate_batch(
        self, conversations: Sequence[Conversation], params: SamplingParams
    ) -> list[BatchItem]:
        with self._pool._borrowed(self._config) as engine:
            return await engine.generate_batch(conversations, params)

    async def aclose(self) -> None:
        return None

    async def _relay(self, messages: Conversation, params: SamplingParams) -> AsyncIterator[StreamEvent]:
        with self._pool._borrowed(self._config) as engine:
            async with engine.stream(messages, params) as inner:
                async for chunk in inner:
                    yield chunk
                result = inner.result
            yield StreamEnd(result.finish_reason, result.prompt_tokens, result.completion_tokens)


def _validated(config: BackendConfig | Mapping[str, Any]) -> BackendConfig:
    if isinstance(config, (LlamaCppConfig, OpenAIConfig, VLLMConfig, TransformersConfig)):
        return config
    return parse_backend_config(config)


def _build_engine(config: VLLMConfig | TransformersConfig) -> Backend:
    # Imported here: torch and vLLM are optional extras, and heavy.
    if isinstance(config, VLLMConfig):
        from inference.vllm_backend import VLLMBackend

        return VLLMBackend(config)
    from inference.transformers_backend import TransformersBackend

    return TransformersBackend(config)
