"""Releasing arena data: `libra export votes` and `libra replay` (issue 11, item 10)."""

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from arena import draw_replay, export
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import LibraError
from core.settings import Settings
from evaluation.service import cycle_id_at
from server.cli.common import database, fail, friendly, in_transaction, load_settings
from server.leaderboard import replay as replaying
from server.leaderboard import repository

export_app = typer.Typer(help="Export arena data with personal data removed.", no_args_is_help=True)

PARQUET_BATCH = 5000


class Format(StrEnum):
    jsonl = "jsonl"
    parquet = "parquet"


@export_app.command("votes")
@friendly
def export_votes(
    format_: Annotated[Format, typer.Option("--format", help="jsonl (one battle a line) or parquet.")] = Format.jsonl,
    out: Annotated[Path | None, typer.Option(help="Where to write; jsonl defaults to stdout, parquet to "
                                                  "arena-votes.parquet.")] = None,
) -> None:
    """Every voted battle: turns, answers with style features, the vote, its review and flags; no addresses,
    session ids, hashes, idempotency keys or private reasons; held-out prompts withheld."""
    if format_ == Format.parquet:
        _need_pyarrow()  # before touching the database
    settings = load_settings()
    with database(settings) as url:
        if format_ == Format.jsonl:
            with (out.open("w", encoding="utf-8") if out else _stdout()) as stream:
                count = asyncio.run(_export(url, _voted_battles(settings), JsonlSink(stream)))
        else:
            count = asyncio.run(_export(url, _voted_battles(settings), ParquetSink(out or Path("arena-votes.parquet"))))
    typer.echo(f"exported {count} voted battles" + (f" to {out}" if out else ""), err=True)


@export_app.command("pair-scores")
@friendly
def export_pair_scores(
    out: Annotated[Path | None, typer.Option(help="Where to write (jsonl); defaults to stdout.")] = None,
) -> None:
    """The pair scores that exported draws used, one refresh's version a line: with `libra export votes`,
    enough for `libra replay-draws` to check every draw without the database."""
    settings = load_settings()
    with database(settings) as url, (out.open("w", encoding="utf-8") if out else _stdout()) as stream:
        count = asyncio.run(_export(url, export.score_versions, JsonlSink(stream)))
    typer.echo(f"exported {count} pair-score versions" + (f" to {out}" if out else ""), err=True)


@contextmanager
def _stdout() -> Iterator[IO[str]]:
    yield sys.stdout  # never closed here


def _need_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        fail("--format parquet needs pyarrow, an optional dependency: pip install pyarrow (or use --format jsonl)")


async def _export(url: str, records_of: Callable[[AsyncSession], AsyncIterator[dict[str, Any]]],
                  sink: "JsonlSink | ParquetSink") -> int:
    """Every record of `records_of` into `sink`, all read in one consistent view of every table."""
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            async for record in records_of(session):
                sink.add(record)
        return sink.close()
    finally:
        await engine.dispose()


def _voted_battles(settings: Settings) -> Callable[[AsyncSession], AsyncIterator[dict[str, Any]]]:
    """`libra export votes`' records: held-out prompts withheld, over every cycle the battles span."""
    async def records(session: AsyncSession) -> AsyncIterator[dict[str, Any]]:
        span = await export.battle_span(session)
        cycles = export.cycles_between(*span, cycle_id_at) if span else ()
        held_out = await asyncio.to_thread(export.held_out_texts, settings, cycles)
        async for record in export.records(session, held_out):
            yield record

    return records


class JsonlSink:
    def __init__(self, stream: IO[str]) -> None:
        self.stream, self.count = stream, 0

    def add(self, record: dict[str, Any]) -> None:
        self.stream.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        self.count += 1

    def close(self) -> int:
        self.stream.flush()
        return self.count


class ParquetSink:
    """Row groups of PARQUET_BATCH records under one fixed schema; the file appears whole or not at all."""

    def __init__(self, target: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa, self.target, self.count = pa, target, 0
        self.schema = _parquet_schema(pa)
        self.partial = target.with_name(target.name + ".partial")
        self.writer = pq.ParquetWriter(self.partial, self.schema)
        self.batch: list[dict[str, Any]] = []

    def add(self, record: dict[str, Any]) -> None:
        self.batch.append(record)
        if len(self.batch) >= PARQUET_BATCH:
            self._flush()

    def _flush(self) -> None:
        self.writer.write_table(self.pa.Table.from_pylist(self.batch, schema=self.schema))
        self.count += len(self.batch)
        self.batch = []

    def close(self) -> int:
        self._flush()
        self.writer.close()
        self.partial.replace(self.target)
        return self.count


def _parquet_schema(pa: Any) -> Any:
    """Fixed, so every batch (and every release) has the same columns, whatever values are null."""
    style = pa.struct([(name, pa.int64()) for name in ("length", "headers", "lists", "bold")])
    answer = pa.struct([("side", pa.string()), ("status", pa.string()), ("text", pa.string()),
                        ("finish_reason", pa.string()), ("completion_tokens", pa.int64()),
                        ("latency_s", pa.float64()), ("ttft_s", pa.float64()), ("style", style)])
    turn = pa.struct([("turn", pa.int64()), ("prompt", pa.string()), ("regenerations", pa.int64()),
                      ("answers", pa.list_(answer))])
    vote = pa.struct([("id", pa.int64()), ("helpfulness", pa.string()), ("safety", pa.string()),
                      ("harm_category", pa.string()), ("reason", pa.string()), ("excluded_reason", pa.string()),
                      ("review", pa.string()), ("created_at", pa.string())])
    return pa.schema([
        ("export_version", pa.int64()), ("battle_id", pa.string()), ("created_at", pa.string()),
        ("model_a", pa.string()), ("model_b", pa.string()), ("prompt_source", pa.string()),
        ("attack", pa.string()), ("pool_item", pa.string()), ("identity_leak", pa.bool_()),
        ("sampling_seed", pa.int64()), ("pairing", pa.string()), ("draw_models", pa.list_(pa.string())),
        ("withheld", pa.string()),
        ("turns", pa.list_(turn)), ("vote", vote), ("flags", pa.list_(pa.string())),
    ])


def read_export(path: Path) -> Iterator[dict[str, Any]]:
    """Records of a jsonl or parquet export (by the file's first bytes, not its name)."""
    with path.open("rb") as probe:
        parquet = probe.read(4) == b"PAR1"
    if parquet:
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise LibraError("reading a parquet export needs pyarrow: pip install pyarrow") from None
        yield from pq.read_table(path).to_pylist()
        return
    with path.open(encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise LibraError(f"{path}:{number}: not a JSON line ({exc.msg})") from None


@friendly
def replay(
    snapshot: Annotated[int, typer.Option("--snapshot", help="The leaderboard version to recompute.")],
    export_path: Annotated[Path, typer.Option("--export", exists=True, dir_okay=False,
                                              help="A file written by `libra export votes`.")],
) -> None:
    """Recompute a published snapshot's arena ratings from an export and the snapshot's recorded config;
    exit 0 when every published arena number is reproduced exactly, 1 otherwise."""
    settings = load_settings()
    with database(settings) as url:
        stored = in_transaction(url, lambda session: repository.get(session, snapshot))
    if stored is None:
        fail(f"no leaderboard snapshot {snapshot}")
    if "replay" not in stored.config:
        fail(f"snapshot {snapshot} predates replay records (it does not say which votes it read)")
    replayed = replaying.replay(stored.config, read_export(export_path))
    problems = replaying.differences(stored.payload, replayed)
    expected = stored.config["replay"]["counted_votes"]
    if replayed.counted != expected:
        problems.insert(0, f"the export holds {replayed.counted} counted votes up to vote "
                           f"{stored.config['replay']['max_vote_id']}; the snapshot counted {expected}")
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        fail(f"snapshot {snapshot} is not reproduced by {export_path} ({len(problems)} differences)")
    typer.echo(f"snapshot {snapshot}: arena ratings of {len(stored.payload['models'])} models reproduced exactly "
               f"from {replayed.counted['helpfulness']} counted votes")


@friendly
def replay_draws(
    export_path: Annotated[Path, typer.Option("--export", exists=True, dir_okay=False,
                                              help="A file written by `libra export votes`.")],
    scores_path: Annotated[Path, typer.Option("--scores", exists=True, dir_okay=False,
                                              help="A file written by `libra export pair-scores`.")],
) -> None:
    """Replay every exported battle's draw from its seed and recorded inputs, without the database; exit 0
    when each battle's two models are the ones its seed draws, 1 otherwise."""
    known = draw_replay.known_scores(read_export(scores_path))
    found = draw_replay.check(read_export(export_path), known)
    for line in found.mismatches:
        typer.echo(line, err=True)
    if found.mismatched > len(found.mismatches):
        typer.echo(f"... and {found.mismatched - len(found.mismatches)} more", err=True)
    for version, battles in sorted(found.missing_versions.items()):
        typer.echo(f"{battles} battles drew with pair-score version {version}, which {scores_path} lacks", err=True)
    skipped = f"; {found.without_record} battles have no replayable draw record" if found.without_record else ""
    if not found.ok:
        fail(f"draws not reproduced: {found.mismatched} differ, "
             f"{sum(found.missing_versions.values())} lack their scores{skipped}")
    policies = ", ".join(f"{n} {policy}" for policy, n in sorted(found.by_policy.items()))
    typer.echo(f"draws of {found.reproduced} battles reproduced exactly ({policies or 'none'}){skipped}")
