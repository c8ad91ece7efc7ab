"""`BackendPool`: the one place backends are built, shared resources held.

Build it once at application startup (lifespan) and close it at shutdown. It
owns the shared `httpx.AsyncClient`, the lazily loaded llama.cpp models, one
concurrency limit per HTTP endpoint, and the GPU engines (loaded once per
config: a vLLM engine takes the whole GPU).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from inference.config import (
    BackendConfig,
    LlamaCppConfig,
    OpenAIConfig,
    TransformersConfig,
    VLLMConfig,
    parse_backend_config,
)
from inference.credentials import resolve_api_key
from inference.llamacpp.backend import LlamaCppBackend
from inference.llamacpp.files import default_cache_dir
from inference.llamacpp.runtime import ModelCache, ModelKey
from inference.protocol import Backend

logger = logging.getLogger(__name__)


class BackendPool:
    """Hands out backends for model configs; shares what they can share."""

    def __init__(
        self,
        *,
        cache_dir: Path | None = None,
        http_client: httpx.AsyncClient | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self._owns_client = http_client is None
        self._client = http_client or httpx.AsyncClient(
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
        )
        self._models = ModelCache(cache_dir or default_cache_dir())
        self._environ = environ
        self._endpoint_limits: dict[str, asyncio.Semaphore] = {}
        self._engines: dict[BackendConfig, Backend] = {}

    @property
    def http_client(self) -> httpx.AsyncClient:
        return self._client

    def get(self, config: BackendConfig | Mapping[str, Any]) -> Backend:
        """The backend for a config (a validated config or its dict)."""
        if not isinstance(config, (LlamaCppConfig, OpenAIConfig, VLLMConfig, TransformersConfig)):
            config = parse_backend_config(config)
        if isinstance(config, LlamaCppConfig):
            key = ModelKey(config.model, config.n_ctx, config.n_threads)
            return LlamaCppBackend(config, self._models.get(key))
        if isinstance(config, OpenAIConfig):
            return self._openai(config)
        return self._engine(config)

    async def aclose(self) -> None:
        engines, self._engines = list(self._engines.values()), {}
        for engine in engines:
            await engine.aclose()
        # Joining the model threads blocks until their current token loop ends.
        await asyncio.to_thread(self._models.close)
        if self._owns_client:
            await self._client.aclose()

    def _openai(self, config: OpenAIConfig) -> Backend:
        from inference.http_backend import OpenAIBackend

        # One limit per endpoint, shared by every model served from it.
        endpoint = str(config.base_url)
        limit = self._endpoint_limits.setdefault(endpoint, asyncio.Semaphore(config.max_concurrency))
        return OpenAIBackend(config, self._client, limit, resolve_api_key(config, self._environ))

    def _engine(self, config: VLLMConfig | TransformersConfig) -> Backend:
        engine = self._engines.get(config)
        if engine is None:
            engine = self._engines[config] = _build_engine(config)
            logger.info("inference.pool.engine.created", extra={"kind": config.kind, "model": config.model})
        return engine


def _build_engine(config: VLLMConfig | TransformersConfig) -> Backend:
    # Imported here: torch and vLLM are optional extras, and heavy.
    if isinstance(config, VLLMConfig):
        from inference.vllm_backend import VLLMBackend

        return VLLMBackend(config)
    from inference.transformers_backend import TransformersBackend

    return TransformersBackend(config)
