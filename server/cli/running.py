"""Long-running commands: the service and the job worker."""

import asyncio
import signal
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
from server.cli.stopping import StopDeadline
from server.first_run import queue_first_run_at_start
from server.runtime import Runtime, close_runtime, open_runtime
from server.seed import seed_defaults
from server.workers import Slot, Workers, slots_for


@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default LIBRA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default LIBRA_PORT).")] = None,
    worker: Annotated[bool, typer.Option(help="Run the job worker slots in the same process.")] = True,
) -> None:
    """Migrate the database, register the default models, and run the API, the web page and a worker.

    Ctrl-C or SIGTERM stops within LIBRA_STOP_TIMEOUT_S (a running evaluation is interrupted and resumes
    at the next start); a second Ctrl-C stops at once.
    """
    settings = load_settings()
    host, port = host or settings.host, port or settings.port
    check_port_free(host, port)
    stop_on_sigterm()
    deadline = StopDeadline(settings.stop_timeout_s, "Libra Arena")
    try:
        _serve(settings, host, port, worker, deadline)
    except KeyboardInterrupt:
        pass  # a requested stop: everything below has been closed on the way out
    deadline.cancel()
    typer.echo("Libra Arena stopped.")


def _serve(settings: Settings, host: str, port: int, worker: bool, deadline: StopDeadline) -> None:
    with database(settings) as url:
        migrate.upgrade(url)
        if settings.seed_defaults:
            in_transaction(url, seed_defaults)
        queue_first_run_at_start(settings, url)
        typer.secho(f"Libra Arena is starting at http://{host}:{port}/  (API docs at /docs; Ctrl-C stops)",
                    fg=typer.colors.GREEN)
        app = create_app(settings, url, with_worker=worker)
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="on",
                                timeout_graceful_shutdown=max(1, int(settings.stop_timeout_s / 2)))
        try:
            stopping.Server(config, deadline).run()
        finally:
            _say_notes(getattr(app.state, "runtime", None))


def _say_notes(runtime: Runtime | None) -> None:
    for note in runtime.stop_notes if runtime else ():
        typer.secho(f"stopping: {note}", err=True, fg=typer.colors.YELLOW)


@friendly
def worker(
    queue: Annotated[list[str] | None, typer.Option(
        help="Queue to serve; repeat for several: cpu, gpu (evaluations), housekeeping (snapshots and "
             "other short jobs). Default: all, evaluations and short jobs in separate slots.")] = None,
    concurrency: Annotated[int | None, typer.Option(
        min=1, help="Evaluations at once (default LIBRA_WORKER_CONCURRENCY).")] = None,
) -> None:
    """Run a job worker: evaluations, leaderboard snapshots, housekeeping. Start as many as you like.

    Ctrl-C or SIGTERM stops within LIBRA_STOP_TIMEOUT_S; a second Ctrl-C stops at once.
    """
    settings = load_settings()
    try:
        slots = slots_for(tuple(queue or ()), concurrency or settings.worker_concurrency, settings.stop_timeout_s)
    except ValueError as exc:
        fail(str(exc))
    stop_on_sigterm()
    deadline = StopDeadline(settings.stop_timeout_s, "the worker")
    with database(settings) as url:
        migrate.upgrade(url)
        names = ", ".join(f"{slot.name} ({', '.join(slot.queues)})" for slot in slots)
        typer.echo(f"worker serving {names}; Ctrl-C stops")
        asyncio.run(_work(settings, url, slots, deadline))
    deadline.cancel()
    typer.echo("worker stopped.")


async def _work(settings: Settings, url: str, slots: list[Slot], deadline: StopDeadline) -> None:
    runtime = await open_runtime(settings, url)
    running = asyncio.create_task(Workers(runtime.jobs, runtime.job_context, slots).run())
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: (deadline.request(), running.cancel()))
    try:
        await running
    except asyncio.CancelledError:
        pass
    finally:
        await close_runtime(runtime)
        _say_notes(runtime)


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
