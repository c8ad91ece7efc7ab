"""Long-running commands: the service and the job worker."""

import asyncio
from typing import Annotated

import typer
import uvicorn

from core import migrate
from core.settings import Settings
from server.app import create_app
from server.cli.common import (
    check_port_free,
    database,
    friendly,
    in_transaction,
    load_settings,
    stop_on_sigterm,
)
from server.runtime import close_runtime, open_runtime
from server.seed import seed_defaults


@friendly
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (default LIBRA_HOST).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default LIBRA_PORT).")] = None,
    worker: Annotated[bool, typer.Option(help="Run a job worker in the same process.")] = True,
) -> None:
    """Migrate the database, register the default models, and run the API, the web page and a worker."""
    settings = load_settings()
    host, port = host or settings.host, port or settings.port
    check_port_free(host, port)
    stop_on_sigterm()
    try:
        _serve(settings, host, port, worker)
    except KeyboardInterrupt:
        pass  # a requested stop: everything below has been closed on the way out
    typer.echo("Libra Arena stopped.")


def _serve(settings: Settings, host: str, port: int, worker: bool) -> None:
    with database(settings) as url:
        migrate.upgrade(url)
        if settings.seed_defaults:
            in_transaction(url, seed_defaults)
        typer.secho(f"Libra Arena is starting at http://{host}:{port}/  (API docs at /docs; Ctrl-C stops)",
                    fg=typer.colors.GREEN)
        app = create_app(settings, url, with_worker=worker)
        uvicorn.run(app, host=host, port=port, log_level="warning", lifespan="on")


@friendly
def worker(
    queue: Annotated[list[str] | None, typer.Option(help="Queue to serve; repeat for several. Default: all.")] = None,
    concurrency: Annotated[int | None, typer.Option(min=1, help="Jobs at once (default LIBRA_WORKER_CONCURRENCY).")] = None,
) -> None:
    """Run a job worker: evaluations, leaderboard snapshots, housekeeping. Start as many as you like."""
    settings = load_settings()
    stop_on_sigterm()
    with database(settings) as url:
        migrate.upgrade(url)
        typer.echo(f"worker serving queues: {', '.join(queue) if queue else 'all'}")
        asyncio.run(_work(settings, url, queue, concurrency or settings.worker_concurrency))


async def _work(settings: Settings, url: str, queues: list[str] | None, concurrency: int) -> None:
    runtime = await open_runtime(settings, url)
    try:
        await runtime.jobs.run_worker_async(
            queues=queues, concurrency=concurrency, additional_context=runtime.job_context
        )
    finally:
        await close_runtime(runtime)


@friendly
def serve_model(
    name: Annotated[str, typer.Argument(help="Slug of a registered model (see `libra models list`).")],
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the endpoint.")] = 8001,
    host: Annotated[str | None, typer.Option(help="Address to listen on (default LIBRA_HOST).")] = None,
) -> None:
    """Serve one registered model as an OpenAI-compatible endpoint (/v1/chat/completions, /v1/models)."""
    from core.registry import repository as registry
    from inference import BackendPool, parse_backend_config
    from inference.openai_server import build_app

    settings = load_settings()
    host = host or settings.host
    check_port_free(host, port)
    stop_on_sigterm()
    with database(settings) as url:  # only to look the model up; the endpoint needs no database
        migrate.upgrade(url)
        model = in_transaction(url, lambda session: registry.get_by_slug(session, name))
    pool = BackendPool()
    app = build_app(pool.get(parse_backend_config(model.config)), model.slug)
    typer.secho(f"{model.slug} is served at http://{host}:{port}/v1  (OpenAI-compatible; Ctrl-C stops)",
                fg=typer.colors.GREEN)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning")
    except KeyboardInterrupt:
        pass
    finally:
        asyncio.run(pool.aclose())
