"""Maintainer commands: migrations, API keys, models."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from core import migrate
from core.keys.models import KeyScope
from core.keys.schemas import KeyOut
from core.keys.service import create_key, list_keys, revoke_key
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
    expires_in_days: Annotated[int | None, typer.Option(min=1, help="Expire after N days (default: never).")] = None,
) -> None:
    """Create an API key. It is printed once; only its hash is stored."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        issued = in_transaction(url, lambda s: create_key(s, name, scope, actor="cli",
                                                          expires_in_days=expires_in_days))
    typer.echo(issued.plaintext)
    typer.echo(f"(key {issued.id}, scope {issued.scope.value}: store it now, it is not shown again)", err=True)


def _key_state(key: KeyOut) -> str:
    if key.revoked_at:
        return "revoked"
    return "expired" if key.expires_at and key.expires_at <= datetime.now(UTC) else "active"


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@keys_app.command("list")
@friendly
def keys_list(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every API key (never its secret or hash)."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        rows = in_transaction(url, _keys_out)
    if as_json:
        typer.echo(json.dumps([{**k.model_dump(mode="json"), "state": _key_state(k)} for k in rows], indent=2))
        return
    for k in rows:
        typer.echo(f"{k.id:<5} {k.prefix:<9} {k.scope.value:<10} {_key_state(k):<8} "
                   f"expires {_when(k.expires_at):<16} last used {_when(k.last_used_at):<16} {k.name}")


async def _keys_out(session: AsyncSession) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in await list_keys(session)]


@keys_app.command("revoke")
@friendly
def keys_revoke(key_id: Annotated[int, typer.Argument(metavar="ID", help="The key's id (see `keys list`).")]) -> None:
    """Revoke a key: its next request gets 401."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        key = in_transaction(url, lambda s: revoke_key(s, key_id, actor="cli"))
    typer.echo(f"revoked key {key.id} ({key.name}, scope {key.scope.value})")


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
        typer.echo(f"{m.slug:<32} {m.status.value:<10} {m.backend_kind:<12} {m.display_name}")


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


@models_app.command("approve")
@friendly
def models_approve(slug: Annotated[str, typer.Argument(help="An evaluated model's slug.")]) -> None:
    """Let an evaluated submission into the arena and onto the leaderboard (docs/security.md)."""
    with database(load_settings()) as url:
        migrate.upgrade(url)
        model = in_transaction(url, lambda s: contestants.approve(s, slug, actor="cli"))
    typer.echo(f"approved {model.slug} ({model.status.value})")
