"""Maintainer commands: migrations, API keys, models."""

import json
from pathlib import Path
from typing import Annotated

import typer

from core import migrate
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from server import contestants
from server.cli.common import database, fail, friendly, in_transaction, load_settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for submitters and admins.", no_args_is_help=True)
models_app = typer.Typer(help="The registered models (contestants).", no_args_is_help=True)


@db_app.command("upgrade")
@friendly
def db_upgrade(revision: Annotated[str, typer.Argument(help="Target revision.")] = "head") -> None:
    """Apply migrations up to REVISION (default: the newest)."""
    with database(load_settings()) as url:
        migrate.upgrade(url, revision)
        typer.echo(f"database at revision {migrate.current_revision(url)}")


@db_app.command("current")
@friendly
def db_current() -> None:
    """Show the database's current revision."""
    with database(load_settings()) as url:
        typer.echo(migrate.current_revision(url) or "empty (no migrations applied)")


@keys_app.command("create")
@friendly
def keys_create(
    scope: Annotated[KeyScope, typer.Option(help="submitter: may submit models; admin: everything.")],
    name: Annotated[str, typer.Option(help="Whose key this is, for the audit log.")] = "unnamed",
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        issued = in_transaction(url, lambda s: create_key(s, name, scope, actor="cli"))
    typer.echo(issued.plaintext)
    typer.echo(f"(key {issued.id}, scope {issued.scope.value}: store it now, it is not shown again)", err=True)


@models_app.command("list")
@friendly
def models_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every registered model with its status."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        rows = in_transaction(url, registry.list_all)
    if as_json:
        typer.echo(json.dumps([{"slug": m.slug, "status": m.status.value, "backend": m.backend_kind,
                                "display_name": m.display_name} for m in rows], indent=2))
        return
    for m in rows:
        typer.echo(f"{m.slug:<32} {m.status.value:<8} {m.backend_kind:<12} {m.display_name}")


def _read_config(config: str) -> dict:
    text = Path(config[1:]).read_text() if config.startswith("@") else config
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"--config is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
    if not isinstance(parsed, dict):
        fail("--config must be a JSON object")
    return parsed


@models_app.command("add")
@friendly
def models_add(
    slug: Annotated[str, typer.Argument(help="Public name: lowercase letters, digits, dashes.")],
    config: Annotated[str, typer.Option(help="Backend config as JSON, or @path/to/file.json.")],
    display_name: Annotated[str | None, typer.Option(help="Shown name (default: the slug).")] = None,
    organisation: Annotated[str, typer.Option(help="Who made the model.")] = "unknown",
    description: Annotated[str, typer.Option(help="One paragraph for the model page.")] = "",
    pending: Annotated[bool, typer.Option(help="Register as pending instead of active.")] = False,
) -> None:
    """Register a model (active at once, unless --pending)."""
    entry = ContestantIn(slug=slug, display_name=display_name or slug, organisation=organisation,
                         description=description, config=_read_config(config))
    status = ContestantStatus.pending if pending else ContestantStatus.active
    with database(load_settings()) as url:
        migrate.upgrade(url)
        model = in_transaction(url, lambda s: contestants.register(s, entry, status, actor="cli"))
    typer.echo(f"registered {model.slug} ({model.status.value}, backend {model.backend_kind})")
