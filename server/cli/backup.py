"""`libra backup FILE` and `libra restore FILE`: the whole database, embedded or external (core/backup.py)."""

from pathlib import Path
from typing import Annotated

import typer

from core import backup as backups
from core import migrate
from server.cli.common import database, friendly, load_settings


@friendly
def backup(
    file: Annotated[Path, typer.Argument(help="Where to write the backup (pg_dump's custom format).")],
    force: Annotated[bool, typer.Option("--force", help="Replace FILE if it exists.")] = False,
) -> None:
    """Back up the whole database (models, battles, votes, evaluations, jobs) to FILE.

    Consistent while the service runs (one snapshot); uses pg_dump from the embedded server's package or
    the system, whichever is at least as new as the server.
    """
    with database(load_settings()) as url:
        tools = backups.backup(url, file, overwrite=force)
    size = file.expanduser().stat().st_size
    typer.echo(f"backed up to {file} ({size:,} bytes, pg_dump {tools.major})")


@friendly
def restore(
    file: Annotated[Path, typer.Argument(help="A file written by `libra backup`.")],
    force: Annotated[bool, typer.Option("--force", help="Replace a database that already holds data.")] = False,
) -> None:
    """Restore FILE into the database, all or nothing (one transaction).

    Refuses a database that holds tables unless --force, which replaces everything in it. Stop
    `libra serve` and the workers first. `libra serve` then applies any newer migrations.
    """
    with database(load_settings()) as url:
        revision = backups.restore(url, file, force=force)
        known = _known_revision(url, revision)
    typer.echo(f"restored {file} (database at revision {revision})")
    if not known:
        typer.secho(f"note: revision {revision} is not one of this Libra's migrations: the backup comes from a "
                    "newer version; install that version before `libra serve`", err=True, fg=typer.colors.YELLOW)


def _known_revision(url: str, revision: str | None) -> bool:
    from alembic.script import ScriptDirectory
    from alembic.util import CommandError

    try:
        return ScriptDirectory.from_config(migrate.alembic_config(url)).get_revision(revision) is not None
    except CommandError:
        return False
