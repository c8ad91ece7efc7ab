"""Several API processes on one port, and the job worker in a process of its own (`libra serve --workers N`).

One Python process serves requests on one core at a time. With N processes on one port, each API process
listens on a socket of its own bound with SO_REUSEPORT, and the kernel spreads new connections over them
(where the system has no SO_REUSEPORT the parent binds one socket and hands it to all). The parent
migrates, seeds and writes the shared secrets before any child starts, so the children only build their
app (`server.app.create_app_from_environment`).

Why a small supervisor of our own rather than uvicorn's `--workers`: uvicorn's waits for its children with
no time limit (a stuck one would hold the stop past LIBRA_STOP_TIMEOUT_S), knows nothing of the job worker,
and its internals change between releases. This one uses only uvicorn's public `Config` and `Server`, and
the stop rules of a single process (server/cli/stopping.py):

- the parent counts Ctrl-C and SIGTERM and forwards one SIGTERM to each child. A terminal's Ctrl-C also
  reaches every process of its group: the children ignore SIGINT, so that one Ctrl-C is not counted twice.
- each child stops by its own deadline (80% of LIBRA_STOP_TIMEOUT_S); the parent kills what is left at 90%,
  then stops the embedded Postgres, all within LIBRA_STOP_TIMEOUT_S. A second Ctrl-C kills the children at once.
- a child that dies is started again, after a pause that grows while it keeps dying soon after its start.
  A child whose first start fails (uvicorn's startup-failure exit code: the app cannot start) stops the whole
  service instead, since every new one would fail the same way.
- on Linux a child gets SIGTERM when its parent dies, so even `kill -9` of the parent leaves no child
  serving; each child is named (`libra-api`, `libra-worker` in ps and top).
"""

import asyncio
import atexit
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import typer
import uvicorn
from uvicorn.config import STARTUP_FAILURE

from core.logging import configure_logging
from core.settings import Settings
from server.cli.stopping import ChildServer, StopDeadline
from server.runtime import Runtime, close_runtime, open_runtime
from server.workers import Slot, Workers, slots_for

log = logging.getLogger(__name__)

# Linux (3.9+) and the BSDs: each API process listens on a socket of its own on the one port.
OWN_SOCKETS = hasattr(socket, "SO_REUSEPORT")
API_NAME = "libra-api"
WORKER_NAME = "libra-worker"
WATCH_INTERVAL_S = 0.5
HEALTHY_AFTER_S = 10.0  # a child that lived this long before dying restarts at once
MAX_RESTART_PAUSE_S = 30.0
_PR_SET_PDEATHSIG, _PR_SET_NAME = 1, 15


class ChildFailed(Exception):
    """A child could not start at all (its own error is on stderr above)."""


@dataclass
class Child:
    """One supervised process: what it runs, and how its restarts have gone."""

    name: str
    target: Callable[..., None]
    args: tuple[Any, ...]
    process: BaseProcess | None = None
    generation: int = 0
    started_at: float = 0.0
    quick_deaths: int = 0
    next_start: float = 0.0


@dataclass
class Supervisor:
    """Starts the children, restarts the ones that die, and stops them all within a deadline."""

    children: list[Child]
    on_exit: Callable[[int], None] = lambda pid: None  # a child's pid is gone (its metrics files, say)
    _spawn: Any = field(default_factory=lambda: multiprocessing.get_context("spawn"))

    def watch(self, stop: Callable[[float], bool]) -> None:
        """Keeps every child running until ``stop(timeout)`` (an Event's wait) says to stop."""
        for child in self.children:
            self._start(child)
        while not stop(WATCH_INTERVAL_S):
            for child in self.children:
                self._keep_alive(child)

    def stop(self, timeout_s: float) -> None:
        """SIGTERM to each child, then up to ``timeout_s`` for all of them, then SIGKILL for the rest."""
        running = [c.process for c in self.children if c.process is not None and c.process.is_alive()]
        for process in running:
            process.terminate()
        until = time.monotonic() + timeout_s
        for process in running:
            process.join(max(0.0, until - time.monotonic()))
        self.kill_all()

    def kill_all(self) -> None:
        """At once: for a second Ctrl-C, the parent's deadline, or an exit with children still running."""
        for child in self.children:
            if child.process is not None and child.process.is_alive():
                child.process.kill()
        for child in self.children:
            if child.process is not None:
                child.process.join(5)
                if child.process.exitcode is not None:
                    self._forget(child)

    def _start(self, child: Child) -> None:
        child.process = self._spawn.Process(target=child.target, args=child.args, name=child.name, daemon=False)
        child.process.start()
        child.generation += 1
        child.started_at = time.monotonic()

    def _keep_alive(self, child: Child) -> None:
        process = child.process
        if process is not None and process.is_alive():
            return
        if process is not None:
            self._note_death(child, process)
        if time.monotonic() >= child.next_start:
            self._start(child)

    def _note_death(self, child: Child, process: BaseProcess) -> None:
        code, pid, lived = process.exitcode, process.pid, time.monotonic() - child.started_at
        self._forget(child)
        if code == STARTUP_FAILURE and child.generation == 1:
            raise ChildFailed(f"a {child.name} process could not start (its error is above)")
        child.quick_deaths = child.quick_deaths + 1 if lived < HEALTHY_AFTER_S else 0
        pause = min(MAX_RESTART_PAUSE_S, 0.5 * 2 ** child.quick_deaths) if child.quick_deaths else 0.0
        child.next_start = time.monotonic() + pause
        log.warning("server.process.died", extra={"role": child.name, "child_pid": pid, "exit_code": code,
                                                   "restart_in_s": pause})

    def _forget(self, child: Child) -> None:
        if child.process is None:
            return
        pid = child.process.pid
        child.process.join(0)
        child.process = None
        if pid is not None:
            self.on_exit(pid)


# --- the children (module-level functions: the spawn start method imports them by name) ----------------


def api_process(config: uvicorn.Config, shared: list[socket.socket], parent: int, stop_timeout_s: float) -> None:
    """One API process: on its own SO_REUSEPORT socket where the system has them, else on ``shared``."""
    _become_child(API_NAME, parent)
    # uvicorn raises the SIGTERM it handled again once it has shut down; the process then just ends.
    signal.signal(signal.SIGTERM, lambda *_: None)
    config.configure_logging()
    sockets = shared or [_own_socket(config.host, config.port)]
    ChildServer(config, StopDeadline(stop_timeout_s, f"API process {os.getpid()}", announce=False)).run(sockets)


def _own_socket(host: str, port: int) -> socket.socket:
    """A socket of this process's own on the shared port. With one socket shared by all, the process that
    wakes first accepts every waiting connection (asyncio accepts up to its backlog at once): 16 keep-alive
    connections opened together all went to one of two processes. With SO_REUSEPORT the kernel spreads new
    connections over the processes' sockets."""
    listening = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listening.bind((host, port))
    except OSError as exc:
        log.error("server.process.bind_failed", extra={"host": host, "port": port, "error": exc.strerror})
        sys.exit(STARTUP_FAILURE)
    return listening


def job_worker_process(parent: int, stop_timeout_s: float) -> None:
    _become_child(WORKER_NAME, parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent forwards a Ctrl-C as one SIGTERM
    settings = Settings()
    configure_logging(settings.log_level, settings.log_json)
    from server.app import IN_PROCESS_QUEUES  # the slots `libra serve` runs in-process with one API process

    slots = slots_for(IN_PROCESS_QUEUES, settings.worker_concurrency, stop_timeout_s)
    deadline = StopDeadline(stop_timeout_s, "the job worker", announce=False)
    if not settings.database_url:
        raise RuntimeError("LIBRA_DATABASE_URL is unset: the parent sets it before it starts any child")
    asyncio.run(run_slots(settings, settings.database_url, slots, deadline, (signal.SIGTERM,)))
    deadline.cancel()


def _become_child(name: str, parent: int) -> None:
    """Named in ps and top, and ended by SIGTERM when the parent dies (Linux); a no-op elsewhere."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        libc.prctl(_PR_SET_NAME, name.encode())
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(0)


# --- the job slots, in `libra worker` and in the job worker child -------------------------------------------


async def run_slots(settings: Settings, url: str, slots: list[Slot], deadline: StopDeadline,
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM),
                    ready: Callable[[], None] | None = None) -> None:
    """Runs the job slots until one of ``signals`` asks for a stop; says what interrupted jobs left.

    The signals are handled from the first moment, so a stop asked while the runtime opens is as clean as
    one asked later; ``ready`` is called once the slots are about to start (a caller announces it there).
    """
    main = asyncio.current_task()
    loop = asyncio.get_running_loop()
    for sig in signals:
        loop.add_signal_handler(sig, lambda: (deadline.request(), main.cancel()))
    runtime = None
    try:
        runtime = await open_runtime(settings, url, relay=False)
        if ready is not None:
            ready()
        await Workers(runtime.jobs, runtime.job_context, slots).run()
    except asyncio.CancelledError:
        pass
    finally:
        if runtime is not None:
            await close_runtime(runtime)
        say_notes(runtime)


def say_notes(runtime: Runtime | None) -> None:
    for note in runtime.stop_notes if runtime else ():
        typer.secho(f"stopping: {note}", err=True, fg=typer.colors.YELLOW)


# --- what every process shares: the database URL, the secrets, the metrics folder ----------------------------


@contextmanager
def shared_environment(settings: Settings, url: str) -> Iterator[Path]:
    """Sets what the children read before any of them starts, and yields the metrics folder.

    The secrets kept in LIBRA_HOME are written here, once: each child would otherwise be first to look
    for them. PROMETHEUS_MULTIPROC_DIR is a fresh private folder where prometheus_client keeps each
    process's figures for `/metrics` to add up; it is removed at exit.
    """
    from arena.integrity import voter_salt
    from core.secrets import encrypt
    from server.middleware import session_secret

    session_secret(settings)
    voter_salt(settings)
    encrypt(settings, "")  # creates LIBRA_HOME/secret.key now, unless LIBRA_SECRET_KEY is set
    metrics = Path(tempfile.mkdtemp(prefix="libra-metrics-"))
    atexit.register(shutil.rmtree, metrics, ignore_errors=True)  # also on a hard stop
    saved = {name: os.environ.get(name) for name in _SHARED}
    os.environ.update({"LIBRA_DATABASE_URL": url, "PROMETHEUS_MULTIPROC_DIR": str(metrics)})
    try:
        yield metrics
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(metrics, ignore_errors=True)


_SHARED = ("LIBRA_DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")


def forget_metrics(folder: Path, pid: int) -> None:
    """A child is gone: prometheus_client drops its live gauges (its counters stay in the totals)."""
    try:
        from prometheus_client import multiprocess
    except ImportError:
        return
    multiprocess.mark_process_dead(pid, str(folder))
