"""`libra eval`: evaluate models here and now, writing the same rows a worker writes (so it resumes)."""

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from core import migrate
from core.db import create_engine, create_sessionmaker, transaction
from core.registry import repository as registry
from core.settings import Settings
from evaluation import service
from evaluation.jobs import queue_leaderboard_recompute
from evaluation.models import EvalRun, RunReason, RunScope, RunStatus
from evaluation.repository import Progress as RunProgress
from inference import BackendPool
from server.cli.common import database, fail, friendly, in_transaction, load_settings
from server.jobs import build_job_app
from server.seed import seed_defaults


class _Rate(ProgressColumn):
    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:5.1f} items/s" if task.speed else "  ?   items/s", style="cyan")


class _Bars:
    """A bar per phase (generate, score) with items/s and ETA, on stderr; stdout keeps the table."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._tasks: dict[str, int] = {}

    def planned(self, p: RunProgress) -> None:
        for phase, done in (("generate", p.generated), ("score", p.scored)):
            self._tasks[phase] = self._progress.add_task(phase, total=p.total, completed=done)

    def saved(self, phase: str, n: int) -> None:
        task = self._progress.tasks[self._tasks[phase]]
        self._progress.update(task.id, completed=min(task.total or 0, task.completed + n))


def _bars() -> Progress:
    return Progress(TextColumn("{task.description:<9}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=Console(stderr=True))


@friendly
def eval_(
    models: Annotated[list[str], typer.Argument(metavar="MODEL", help="Slug(s) of registered models.")],
    suite: Annotated[str | None, typer.Option(help="Suite to run (default LIBRA_EVAL_SUITE).")] = None,
    limit: Annotated[int | None, typer.Option(
        help="Public items per task, no held-out items: a preview run, ranked only until a full run finishes "
             "(default: the full LIBRA_EVAL_ITEMS_PER_TASK + LIBRA_EVAL_HELD_OUT_PER_TASK)."
    )] = None,
) -> None:
    """Evaluate models locally with a progress bar, then print a summary by category.

    Rows go to the database like a worker's, so an interrupted run resumes where it stopped.
    """
    if limit is not None and limit < 1:
        fail(f"--limit must be at least 1 (items per task), not {limit}")
    settings = load_settings()
    if settings.log_level == "INFO":  # the bars and the table say it all; DEBUG shows the events
        logging.getLogger("evaluation").setLevel(logging.WARNING)
    suite = suite or settings.eval_suite
    service.check_suite(suite)
    with database(settings) as url:
        migrate.upgrade(url)
        if settings.seed_defaults:
            in_transaction(url, seed_defaults)
        runs = asyncio.run(_evaluate(settings, url, models, suite, limit))
    if any(run.status != RunStatus.finished for run in runs):
        raise typer.Exit(1)


async def _evaluate(
    settings: Settings, url: str, slugs: list[str], suite: str, limit: int | None
) -> list[EvalRun]:
    engine, backends = create_engine(url), BackendPool(max_engines=settings.max_engines, egress_allow=settings.egress_allow)
    deps = service.EvalDeps(create_sessionmaker(engine), settings, backends)
    try:
        async with transaction(deps.sessions) as session:
            for slug in slugs:  # every name is checked before any work starts
                await registry.get_by_slug(session, slug)
        runs = [await _one(deps, slug, suite, limit) for slug in slugs]
        await _queue_recompute(settings, url)
        return runs
    finally:
        await backends.aclose()
        await engine.dispose()


async def _one(deps: service.EvalDeps, slug: str, suite: str, limit: int | None) -> EvalRun:
    per_task = limit or deps.settings.eval_items_per_task
    held_out = 0 if limit else deps.settings.eval_held_out_per_task
    # Fewer items than the configured cycle: a preview, never ranked over a model's full run.
    scope = service.scope_for(deps.settings, per_task, held_out)
    async with transaction(deps.sessions) as session:
        model = await registry.get_by_slug(session, slug)
        run = await service.create_run(session, model, suite, RunReason.cli, "cli", per_task, held_out, scope)
    typer.secho(f"{slug}: suite {suite}, run {run.id} ({scope.value}), cycle {run.cycle_id}", bold=True,
                err=True)
    with _bars() as progress:
        run = await service.execute_run(deps, run.id, _Bars(progress))
    _print_summary(slug, run)
    return run


async def _queue_recompute(settings: Settings, url: str) -> None:
    jobs = build_job_app(url, settings)
    await jobs.open_async()
    try:
        if await queue_leaderboard_recompute(jobs):
            typer.echo("leaderboard recompute queued", err=True)
    finally:
        await jobs.close_async()


def _fmt(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else "-"


def _print_summary(slug: str, run: EvalRun) -> None:
    if run.status != RunStatus.finished:
        typer.secho(f"{slug}: run {run.id} {run.status.value}: {run.error}", fg=typer.colors.RED, err=True)
        return
    summary = run.summary or {}
    preview = " · preview" if run.scope == RunScope.preview else ""
    table = Table(title=f"{slug} · run {run.id}{preview} · {summary.get('n_items', 0)} public items")
    for column, justify in (("axis", "left"), ("category", "left"), ("mean", "right"), ("ok", "right"),
                            ("other statuses", "left")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for c in summary.get("categories", []):
        others = ", ".join(f"{k}={v}" for k, v in c["statuses"].items() if k != "ok") or "-"
        table.add_row(c["axis"], c["category"], _fmt(c["mean"]), f"{c['n_ok']}/{c['n_items']}", others)
    for a in summary.get("axes", []):
        missing = f"missing: {', '.join(a['missing'])}" if a["missing"] else ""
        bold = [f"[bold]{cell}[/bold]" for cell in (a["axis"], "(axis)", _fmt(a["score"]))]
        table.add_row(*bold, "", missing)
    Console(width=110).print(table)
