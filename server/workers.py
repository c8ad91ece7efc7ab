"""Job workers in slots that never wait for each other, restarted when the database comes back.

An evaluation holds its slot for minutes or hours; a leaderboard snapshot or a housekeeping pass
takes seconds. Each slot is its own procrastinate worker on its own queues, so a snapshot requested
during an evaluation runs at once. procrastinate stops a worker for good when one of its side tasks
fails (a Postgres restart breaks its LISTEN connection); the supervisor here starts it again, with
a growing pause, and records the slot's state for ``/readyz``.

On stop, a slot gives its running jobs ``graceful_s`` to finish, then cancels them: an evaluation
saves nothing more than its finished batches and puts itself back in the queue (see
``evaluation.jobs.run``), a short job is simply run again later.
"""

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import procrastinate

from core import metrics
from core.db import engine_of

log = logging.getLogger(__name__)

EVALUATION_QUEUES = ("cpu", "gpu")
SHORT_QUEUES = ("housekeeping",)
RESTART_PAUSES_S = (0.5, 1.0, 2.0, 5.0)
QUIET_LOG_S = 60.0
JOB_TASK_PREFIX = "process job "  # how procrastinate 3 names the asyncio task of a running job  # one log line per failure kind per slot in this interval, not one per retry


@dataclass(frozen=True)
class Slot:
    name: str
    queues: tuple[str, ...]
    concurrency: int
    graceful_s: float
    """How long a running job may go on after a stop is asked before it is cancelled."""


@dataclass
class SlotState:
    running: bool = False
    restarts: int = 0
    last_error: str | None = None
    _logged: dict[str, float] = field(default_factory=dict)

    def failed(self, slot: str, error: BaseException) -> None:
        self.running = False
        self.restarts += 1
        kind = type(error).__name__
        self.last_error = f"{kind}: {error}".splitlines()[0][:300]
        now = time.monotonic()
        if now - self._logged.get(kind, -QUIET_LOG_S) >= QUIET_LOG_S:
            self._logged[kind] = now
            log.warning("jobs.worker.restarting", extra={"slot": slot, "error": self.last_error,
                                                         "restarts": self.restarts})


def slots_for(queues: tuple[str, ...] | None, concurrency: int, stop_timeout_s: float) -> list[Slot]:
    """Evaluations and short jobs in separate slots; ``queues`` (None: all) picks which exist."""
    wanted = set(queues) if queues else set(EVALUATION_QUEUES + SHORT_QUEUES)
    unknown = wanted - set(EVALUATION_QUEUES + SHORT_QUEUES)
    if unknown:
        raise ValueError(f"unknown queue(s) {', '.join(sorted(unknown))}; known: "
                         f"{', '.join(EVALUATION_QUEUES + SHORT_QUEUES)}")
    slots = []
    evaluation = tuple(q for q in EVALUATION_QUEUES if q in wanted)
    if evaluation:  # an evaluation waits for nothing on stop: its finished batches are already saved
        slots.append(Slot("evaluations", evaluation, concurrency, graceful_s=0.0))
    short = tuple(q for q in SHORT_QUEUES if q in wanted)
    if short:
        slots.append(Slot("short jobs", short, 2, graceful_s=stop_timeout_s / 2))
    return slots


class Workers:
    """Runs every slot until cancelled; the states say which slots are running right now."""

    def __init__(self, app: procrastinate.App, context: Mapping[str, Any], slots: list[Slot]) -> None:
        self._app = app
        self._context = dict(context)
        self.slots = slots
        self.states = {slot.name: SlotState() for slot in slots}

    @property
    def all_running(self) -> bool:
        return all(state.running for state in self.states.values())

    async def run(self) -> None:
        sessions = self._context.get("sessions")
        if sessions is not None:  # the worker's own connections, in the pool gauges of /metrics
            metrics.watch_pool(engine_of(sessions))
        try:
            await asyncio.gather(*(self._supervise(slot) for slot in self.slots))
        finally:
            await self._wait_for_stragglers()

    async def _wait_for_stragglers(self) -> None:
        """Let cancelled jobs finish their clean-up and record their status before the pools close.

        A job cancelled more than once (the HTTP client re-delivers cancellation) can outlive
        procrastinate's wait for it; closing the connection pools under it would leave its job
        "doing" and its run without a waiting job until the stalled-job recovery notices.
        """
        pending = set(self._context.get("cleanups") or ())
        pending |= {t for t in asyncio.all_tasks() if t.get_name().startswith(JOB_TASK_PREFIX)}
        if pending:
            await asyncio.wait(pending, timeout=max(s.graceful_s for s in self.slots) + 5)

    async def _supervise(self, slot: Slot) -> None:
        state, failures = self.states[slot.name], 0
        while True:
            started = time.monotonic()
            state.running = True
            try:
                await self._app.run_worker_async(
                    name=slot.name, queues=list(slot.queues), concurrency=slot.concurrency,
                    install_signal_handlers=False, shutdown_graceful_timeout=slot.graceful_s,
                    additional_context=dict(self._context),
                )
                error: BaseException = RuntimeError("the worker stopped by itself")
            except asyncio.CancelledError:
                state.running = False
                raise
            except Exception as exc:  # noqa: BLE001 - any failure means: pause, then start it again
                error = exc
            failures = 0 if time.monotonic() - started > 30 else failures + 1
            state.failed(slot.name, error)
            await asyncio.sleep(RESTART_PAUSES_S[min(failures, len(RESTART_PAUSES_S) - 1)])
