"""Maintainers' arena commands: pairing weights, paused models (issue 11, items 5 and 6)."""

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from arena import pairing, pairing_admin
from arena.pairing_admin import WeightIn
from core import migrate
from core.settings import Settings
from server.cli.common import database, friendly, in_transaction, load_settings

arena_app = typer.Typer(help="The arena: pairing weights, paused models.", no_args_is_help=True)

T = TypeVar("T")
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(work: Callable[[AsyncSession, Settings], Awaitable[T]]) -> T:
    """Runs one async unit of work in one committed transaction on the configured database."""
    settings = load_settings()
    with database(settings) as url:
        migrate.upgrade(url)
        return in_transaction(url, lambda session: work(session, settings))


def _when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


@arena_app.command("weights")
@friendly
def weights(as_json: JsonOption = False) -> None:
    """Every active model's draw weight (1 when none is set), counted votes, boost and pause."""
    rows = _run(lambda session, settings: pairing_admin.list_weights(session, settings))
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    for r in rows:
        state = "paused" if r.paused else "drawable" if r.weight > 0 else "never drawn"
        typer.echo(f"{r.slug:<32} weight {r.weight:<8g} boost {r.boost:<5g} votes {r.counted_votes:<7} "
                   f"share {r.draw_share:<6.3f} {state:<12} {r.note or ''}")


@arena_app.command("set-weight")
@friendly
def set_weight(
    slug: Annotated[str, typer.Argument(help="The model's slug.")],
    weight: Annotated[float, typer.Argument(metavar="W", help="Draw weight: 1 normal, 0 never drawn.")],
    note: Annotated[str | None, typer.Option(help="Why (shown to other maintainers).")] = None,
) -> None:
    """Set a model's draw weight (audited, actor "cli")."""
    change = WeightIn(weight=weight, note=note)
    row = _run(lambda session, settings: pairing_admin.set_weight(session, slug, change, "cli", settings))
    typer.echo(f"{row.slug}: weight {row.weight:g}")


@arena_app.command("paused")
@friendly
def paused(as_json: JsonOption = False) -> None:
    """Models paused from pairing after failing in a row."""
    rows = _run(lambda session, settings: pairing_admin.list_paused(session))
    if as_json:
        typer.echo(json.dumps([r.model_dump(mode="json") for r in rows], indent=2))
        return
    if not rows:
        typer.echo("no model is paused")
    for r in rows:
        typer.echo(f"{r.slug:<32} paused {_when(r.paused_at)}  {r.failures_in_row} failures  {r.last_error or ''}")


@arena_app.command("resume")
@friendly
def resume(slug: Annotated[str, typer.Argument(help="A paused model's slug.")]) -> None:
    """Let a paused model be drawn again (audited, actor "cli")."""
    _run(lambda session, settings: pairing_admin.resume(session, slug, "cli"))
    typer.echo(f"resumed {slug}")


@arena_app.command("refresh-scores")
@friendly
def refresh_scores() -> None:
    """Recompute the active-pairing scores now (the worker does it on the snapshot's schedule)."""
    version, pairs = _run(lambda session, settings: pairing.refresh_scores(session))
    typer.echo(f"pair scores version {version}: {pairs} pairs")

