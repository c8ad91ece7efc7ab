"""Loaded llama.cpp models: one instance per file and settings, one thread each.

A `llama_cpp.Llama` object is not safe to call from two threads at once. Each
loaded model therefore owns a single worker thread: every call on it, the lazy
load included, runs there, and a lock makes the rule explicit should anything
ever reach the model another way. Queued requests wait in the worker's queue,
not in borrowed pool threads.

Calls made inside `inference.priority.interactive()` (arena answers) jump that
queue, and a running evaluation batch lends the thread to them between two of
its decode steps (`LoadedModel.lend`, see batch.py), so a battle does not wait
for a batch of sixteen long answers.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import threading
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from inference.errors import BackendUnavailable
from inference.llamacpp.files import resolve_model_file
from inference.priority import is_interactive
from inference.threads import Emit, PriorityExecutor, stream_from_thread

if TYPE_CHECKING:
    from llama_cpp import Llama

logger = logging.getLogger(__name__)


@functools.cache
def _route_native_logs() -> object:
    """Sends llama.cpp's own log lines to this logger at DEBUG, process-wide, once.

    Even with ``verbose=False`` llama-cpp-python prints llama.cpp's error-level lines to stderr, and
    loading Gemma 3 says ``llama_kv_cache_iswa: using full-size SWA cache`` there at every context.
    Cached: ctypes must keep the callback alive for as long as llama.cpp may call it.
    """
    import llama_cpp

    @llama_cpp.llama_log_callback
    def forward(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("inference.llamacpp.native", extra={"text": text.decode("utf-8", "replace").rstrip()})

    llama_cpp.llama_log_set(forward, ctypes.c_void_p(0))
    return forward


R = TypeVar("R")
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelKey:
    """What makes two loaded instances different. `copy` > 0 is another instance of the same file and
    settings, with its own thread and context, so that calls made together (the arena's two sides on one
    model) decode side by side instead of one after the other; the weights are mapped from the file, so a
    copy adds its context, not the model's size."""

    model: str
    n_ctx: int
    n_threads: int
    copy: int = 0


class LoadedModel:
    """One lazily loaded llama.cpp instance and the only thread that touches it."""

    def __init__(self, key: ModelKey, cache_dir: Path, *, preempt: bool = True) -> None:
        """`preempt=False` restores first-come-first-served with no lending (for benchmarks only)."""
        self.key = key
        self._cache_dir = cache_dir
        name = f"llama-{key.model}" + (f"-copy{key.copy}" if key.copy else "")
        self._executor = PriorityExecutor(name, preempt=preempt)
        # Re-entrant: an interactive call lent the thread runs inside a batch that holds the lock.
        self._lock = threading.RLock()
        self._llm: Llama | None = None

    @property
    def lent(self) -> int:
        """Interactive calls that ran inside a batch so far."""
        return self._executor.lent

    def lend(self) -> float:
        """From a batch on this model's thread: run the waiting interactive calls now; seconds spent.

        The caller's state must not live in the model's main context, which the interactive calls use
        (batches decode in a context of their own, so their KV cache is untouched).
        """
        if not self._executor.urgent_waiting():
            return 0.0
        spent = self._executor.run_urgent()
        logger.debug("inference.llamacpp.lent", extra={"model": self.key.model, "lent_s": round(spent, 3)})
        return spent

    async def call(self, fn: Callable[[Llama, threading.Event], R]) -> R:
        """Run `fn(llm, cancel)` on the model's thread and await its result.

        If the awaiting task is cancelled (a worker stopping), `cancel` is set so that `fn` stops at
        its next decode step: a thread cannot be killed, and one left decoding would hold the
        process's exit for minutes.
        """
        loop = asyncio.get_running_loop()
        cancel = threading.Event()
        lane = self._executor.lane(is_interactive())
        try:
            return await loop.run_in_executor(lane, self._with_model, lambda llm: fn(llm, cancel))
        except asyncio.CancelledError:
            cancel.set()
            raise

    def stream(self, fn: Callable[[Llama, Emit[T], threading.Event], None]) -> AsyncGenerator[T, None]:
        """Run `fn(llm, emit, cancel)` on the model's thread, yielding what it emits."""
        return stream_from_thread(
            self._executor.lane(is_interactive()),
            lambda emit, cancel: self._with_model(lambda llm: fn(llm, emit, cancel)),
        )

    def close(self) -> None:
        self._executor.shutdown()
        with self._lock:
            if self._llm is not None:
                self._llm.close()
                self._llm = None

    def _with_model(self, fn: Callable[[Llama], R]) -> R:
        with self._lock:
            return fn(self._ensure_loaded())

    def _ensure_loaded(self) -> Llama:
        if self._llm is None:
            self._llm = self._load()
        return self._llm

    def _load(self) -> Llama:
        path = resolve_model_file(self.key.model, self._cache_dir)
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise BackendUnavailable(
                "llama-cpp-python is not installed; install it with: pip install llama-cpp-python"
            ) from error
        _route_native_logs()
        started = time.perf_counter()
        try:
            llm = Llama(
                model_path=str(path),
                n_ctx=self.key.n_ctx,
                n_threads=self.key.n_threads,
                n_threads_batch=self.key.n_threads,
                verbose=False,
            )
        except (ValueError, RuntimeError, OSError) as error:
            raise BackendUnavailable(f"llama.cpp could not load {path.name}: {error}") from error
        logger.info(
            "inference.llamacpp.model.loaded",
            extra={
                "model": self.key.model,
                "n_threads": self.key.n_threads,
                "n_ctx": self.key.n_ctx,
                "copy": self.key.copy,
                "load_s": round(time.perf_counter() - started, 3),
            },
        )
        return llm


class ModelCache:
    """The loaded models of one process (held by the BackendPool, not a global)."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._models: dict[ModelKey, LoadedModel] = {}
        self._guard = threading.Lock()

    def get(self, key: ModelKey) -> LoadedModel:
        with self._guard:
            model = self._models.get(key)
            if model is None:
                model = self._models[key] = LoadedModel(key, self._cache_dir)
            return model

    def close(self) -> None:
        with self._guard:
            models, self._models = list(self._models.values()), {}
        for model in models:
            model.close()
