"""Helpers every command shares: settings, the database (embedded or external), one-line errors."""

import asyncio
import functools
import signal
import socket
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import typer
from pydantic import ValidationError

from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.errors import LibraError
from core.logging import configure_logging
from core.settings import Settings


def fail(message: str, code: int = 1) -> None:
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


def friendly(command: Callable[..., Any]) -> Callable[..., Any]:
    """Turns every expected failure into one line on stderr and a non-zero exit, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except LibraError as exc:
            fail(exc.message)
        except ValidationError as exc:
            first = exc.errors()[0]
            fail(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}")
        except KeyboardInterrupt:
            raise typer.Exit(130) from None

    return wrapper


def stop_on_sigterm() -> None:
    """SIGTERM (systemd, docker stop, timeout) stops like Ctrl-C, so the embedded Postgres is stopped too.

    uvicorn re-raises the signal it caught once it has shut down; with the default SIGTERM action the
    process would die before our clean-up runs.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def load_settings() -> Settings:
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        fail(f"setting LIBRA_{str(first['loc'][0]).upper()}: {first['msg']}")
    configure_logging(settings.log_level, settings.log_json)
    # platformdirs (through the embedded Postgres) warns about XDG_RUNTIME_DIR on every start.
    warnings.filterwarnings("ignore", module="platformdirs")
    return settings


def check_reachable(url: str) -> None:
    try:
        psycopg.connect(libpq_url(url), connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise LibraError(f"cannot reach the database: {reason}", code="db_unreachable") from None


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The external server named by LIBRA_DATABASE_URL, or the embedded one, started and stopped here."""
    if settings.database_url:
        check_reachable(settings.database_url)
        yield settings.database_url
        return
    from core.pgserver import embedded_postgres

    with embedded_postgres(settings.home) as url:
        yield url


def in_transaction(url: str, work: Callable[..., Any]) -> Any:
    """Runs ``await work(session)`` in one committed transaction on a short-lived engine."""
    return asyncio.run(_in_transaction(url, work))


async def _in_transaction(url: str, work: Callable[..., Any]) -> Any:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return await work(session)
    finally:
        await engine.dispose()


def check_port_free(host: str, port: int) -> None:
    """Refuse a port another process listens on; a port held only by TIME_WAIT sockets of a process that
    just exited is free (uvicorn binds with SO_REUSEADDR too), so a restart after a crash works at once."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise LibraError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another with --port "
                             "or LIBRA_PORT", code="port_in_use") from None
