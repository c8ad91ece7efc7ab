"""Long-running commands: the service and the job worker."""

import asyncio
import atexit
import os
import socket
import threading
from pathlib import Path
from typing import Annotated

import typer
import uvicorn

from core import migrate
from core.settings import Settings
from server.app import create_app
from server.cli import stopping
from server.cli.common import (
    check_port_free,
    database,
    fail,
    friendly,
    in_transaction,
    load_settings,
    stop_on_sigterm,
)
from server.cli.processes import (
    API_NAME,
    OWN_SOCKETS,
    WORKER_NAME,
    Child,
    ChildFailed,
    Supervisor,
    api_process,
    forget_metrics,
    job_worker_process,
    run_slots,
    say_notes,
    shared_environment,
)
from server.cli.stopping import StopDeadline
from server.first_run import queue_first_run_at_start
from server.observability import serve_worker_metrics
from server.seed import seed_defaults
from server.workers import slots_for

# What each API process builds when there are several (they import it by name; see server/cli/processes.py).
APP_FACTORY = "server.app:create_app_from_environment"
# Of LIBRA_STOP_TIMEOUT_S, the children get this share for their own clean stop; the parent kills what is
# left a little later, and still has the rest to stop the embedded Postgres within the deadline.
CHILD_STOP_SHARE, KILL_AT_SHARE = 0.8, 0.9


@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default LIBRA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default LIBRA_PORT).")] = None,
    worker: Annotated[bool, typer.Option(help="Run the job worker slots too (in the same process, or in one "
                                              "process of their own with --workers above 1).")] = True,
    workers: Annotated[int | None, typer.Option(
        min=1, max=64, help="API processes sharing the port (default LIBRA_WEB_WORKERS, 1).")] = None,
) -> None:
    """Migrate the database, register the default models, and run the API, the web page and a worker.

    Ctrl-C or SIGTERM stops within LIBRA_STOP_TIMEOUT_S (a running evaluation is interrupted and resumes
    at the next start); a second Ctrl-C stops at once.
    """
    settings = load_settings()
    host, port = host or settings.host, port or settings.port
    processes = workers or settings.web_workers
    check_port_free(host, port)
    stop_on_sigterm()
    if processes > 1:
        _serve_many(settings, host, port, processes, worker)
        typer.echo("Libra Arena stopped.")
        return
    deadline = StopDeadline(settings.stop_timeout_s, "Libra Arena")
    try:
        _serve(settings, host, port, worker, deadline)
    except KeyboardInterrupt:
        pass  # a requested stop: everything below has been closed on the way out
    deadline.cancel()
    typer.echo("Libra Arena stopped.")


def _prepare(settings: Settings, url: str) -> None:
    """What happens once per start, before any request: migrations, default models, the first run."""
    migrate.upgrade(url)
    if settings.seed_defaults:
        in_transaction(url, seed_defaults)
    queue_first_run_at_start(settings, url)


def _say_url(host: str, port: int) -> None:
    typer.secho(f"Libra Arena is starting at http://{host}:{port}/  (API docs at /docs; Ctrl-C stops)",
                fg=typer.colors.GREEN)


def _serve(settings: Settings, host: str, port: int, worker: bool, deadline: StopDeadline) -> None:
    with database(settings) as url:
        _prepare(settings, url)
        _say_url(host, port)
        app = create_app(settings, url, with_worker=worker)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=max(1, int(settings.stop_timeout_s / 2)))
        try:
            stopping.Server(config, deadline).run()
        finally:
            say_notes(getattr(app.state, "runtime", None))


def _serve_many(settings: Settings, host: str, port: int, processes: int, worker: bool) -> None:
    """N API processes on one socket and, with ``worker``, the job worker in one process of its own."""
    try:
        with database(settings) as url, shared_environment(settings, url) as metrics:
            _prepare(settings, url)
            config = uvicorn.Config(APP_FACTORY, factory=True, host=host, port=port, log_level="warning",
                                    lifespan="on", timeout_graceful_shutdown=max(1, int(settings.stop_timeout_s / 2)))
            shared = [] if OWN_SOCKETS else [config.bind_socket()]  # else each API process binds its own
            _say_url(host, port)
            _supervise(settings, _children(settings, config, shared, processes, worker), metrics)
    except KeyboardInterrupt:
        pass  # Ctrl-C before the children started: the context managers above have cleaned up
    except ChildFailed as exc:
        fail(str(exc))


def _children(settings: Settings, config: uvicorn.Config, shared: list[socket.socket], processes: int,
              worker: bool) -> list[Child]:
    me, child_stop_s = os.getpid(), settings.stop_timeout_s * CHILD_STOP_SHARE
    api = [Child(API_NAME, api_process, (config, shared, me, child_stop_s)) for _ in range(processes)]
    return api + ([Child(WORKER_NAME, job_worker_process, (me, child_stop_s))] if worker else [])


def _supervise(settings: Settings, children: list[Child], metrics: Path) -> None:
    supervisor = Supervisor(children, on_exit=lambda pid: forget_metrics(metrics, pid))
    # Registered after the embedded Postgres' own exit handler, so it runs first on a hard stop.
    atexit.register(supervisor.kill_all)
    deadline = StopDeadline(settings.stop_timeout_s, "Libra Arena")
    stop = threading.Event()
    stopping.install(deadline, stop.set)
    try:
        supervisor.watch(stop.wait)
    finally:
        supervisor.stop(settings.stop_timeout_s * KILL_AT_SHARE)
        deadline.cancel()


@friendly
def worker(
    queue: Annotated[list[str] | None, typer.Option(
        help="Queue to serve; repeat for several: cpu, gpu (evaluations), housekeeping (snapshots and "
             "other short jobs). Default: all, evaluations and short jobs in separate slots.")] = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Evaluations at once (default LIBRA_WORKER_CONCURRENCY).")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        min=1, max=65535, help="Serve this worker's metrics at http://LIBRA_HOST:PORT/metrics (default: none).")] = None,
) -> None:
    """Run a job worker: evaluations, leaderboard snapshots, housekeeping. Start as many as you like.

    Ctrl-C or SIGTERM stops within LIBRA_STOP_TIMEOUT_S; a second Ctrl-C stops at once.
    """
    settings = load_settings()
    try:
        slots = slots_for(tuple(queue or ()), concurrency or settings.worker_concurrency, settings.stop_timeout_s)
    except ValueError as exc:
        fail(str(exc))
    if metrics_port:
        check_port_free(settings.host, metrics_port)
    stop_on_sigterm()
    deadline = StopDeadline(settings.stop_timeout_s, "the worker")
    stop_metrics = serve_worker_metrics(settings, metrics_port) if metrics_port else None
    with database(settings) as url:
        migrate.upgrade(url)
        names = ", ".join(f"{slot.name} ({', '.join(slot.queues)})" for slot in slots)
        asyncio.run(run_slots(settings, url, slots, deadline,
                              ready=lambda: typer.echo(f"worker serving {names}; Ctrl-C stops")))
    if stop_metrics is not None:
        stop_metrics()
    deadline.cancel()
    typer.echo("worker stopped.")


@friendly
def serve_model(
    name: Annotated[str, typer.Argument(help="Slug of a registered model (see `libra models list`).")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the endpoint.")] = 8001,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default LIBRA_HOST).")] = None,
) -> None:
    """Serve one registered model as an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models)."""
    from core.registry import repository as registry
    from core.secrets import backend_config
    from inference import BackendPool, parse_backend_config
    from inference.openai_server import build_app

    settings = load_settings()
    host = host or settings.host
    check_port_free(host, port)
    stop_on_sigterm()
    with database(settings) as url:  # only to look the model up; the endpoint needs no database
        migrate.upgrade(url)
        model = in_transaction(url, lambda session: registry.get_by_slug(session, name))
    pool = BackendPool(egress_allow=settings.egress_allow)
    app = build_app(pool.get(parse_backend_config(backend_config(model, settings))), model.slug)
    typer.secho(f"{model.slug} is served at http://{host}:{port}/v1  (OpenAI-compatible; Ctrl-C stops)",
                fg=typer.colors.GREEN)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.run(pool.aclose())
