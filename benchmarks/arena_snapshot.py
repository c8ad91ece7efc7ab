"""Snapshot cost against stored votes (issue 11, item 11): time and peak memory of the leaderboard
snapshot at 1M stored votes against 10k (--quick: 100k against 10k), on an embedded Postgres in a
temp folder, filled with SQL (generate_series), never through the API.

The snapshot reads pair counts and style cells (tables sized by models and bins). The baseline is
the row-based read it replaced (`helpfulness_votes_with_style`, one row per vote, then binning),
measured at both sizes too; and the style-controlled ratings from cells are compared with the
row-based fit on the same votes (max abs difference).

    python -m benchmarks.arena_snapshot [--quick]

Prints one JSON object last: {"figures", "baseline", "targets"}.
"""

import asyncio
import gc
import importlib.util
import json
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa

import ranking
from core.db import create_engine, create_sessionmaker, libpq_url, transaction
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from core.registry import repository as registry
from core.settings import Settings
from server.leaderboard import repository, service
from server.leaderboard.jobs import share_view, take_snapshot

MODELS = 12
REPEATS = 5
QUICK_REPEATS = 3
SEED = 20261202

# Battles with two answers (one turn), a vote each; verdicts and style features drawn by Postgres from
# a fixed seed. Model ids are drawn among the benchmark's models, never equal.
_FILL = """
SELECT setseed(%(seed)s);
CREATE TEMP TABLE draws AS
  SELECT g, m.ids[1 + floor(random() * %(n)s)::int] AS a, floor(random() * (%(n)s - 1))::int AS shift,
         (ARRAY['a','b','tie','both_bad'])[1 + floor(random() * 4)::int] AS verdict,
         gen_random_uuid() AS id
    FROM generate_series(1, %(votes)s) g, (SELECT array_agg(id ORDER BY id) AS ids FROM models) m;
INSERT INTO battles (id, prompt, status, model_a_id, model_b_id, sampling_seed, created_at, turns,
                    prompt_source, identity_leak)
  SELECT d.id, 'p', 'voted', d.a, m.ids[1 + ((array_position(m.ids, d.a) + d.shift) %% %(n)s)], 0, now(), 1,
         'free', false
    FROM draws d, (SELECT array_agg(id ORDER BY id) AS ids FROM models) m;
INSERT INTO battle_turns (battle_id, turn, prompt, created_at) SELECT id, 1, 'p', now() FROM draws;
INSERT INTO battle_answers (battle_id, turn, side, status, text, style_length, style_headers, style_lists,
                            style_bold)
  SELECT d.id, 1, s.side, 'ok', '', (20 + random() * 400)::int, (random() * 4)::int, (random() * 6)::int,
         (random() * 5)::int
    FROM draws d, (VALUES ('a'), ('b')) s(side);
INSERT INTO votes (battle_id, helpfulness, safety, created_at, reason_public) SELECT id, verdict, verdict, now(), false
  FROM draws ORDER BY g;
DROP TABLE draws;
"""

# The pair counts the vote path keeps, rebuilt from the votes (every vote here is counted).
_PAIRS = """
DELETE FROM pair_counts;
INSERT INTO pair_counts (dimension, model_lo_id, model_hi_id, lo_wins, hi_wins, ties, both_bad)
  SELECT dim, least(b.model_a_id, b.model_b_id), greatest(b.model_a_id, b.model_b_id),
         count(*) FILTER (WHERE (v.verdict = 'a') = (b.model_a_id < b.model_b_id) AND v.verdict IN ('a', 'b')),
         count(*) FILTER (WHERE (v.verdict = 'b') = (b.model_a_id < b.model_b_id) AND v.verdict IN ('a', 'b')),
         count(*) FILTER (WHERE v.verdict = 'tie'), count(*) FILTER (WHERE v.verdict = 'both_bad')
    FROM (SELECT battle_id, helpfulness AS verdict, 'helpfulness' AS dim FROM votes
          UNION ALL SELECT battle_id, safety, 'safety' FROM votes) v
    JOIN battles b ON b.id = v.battle_id
   GROUP BY dim, least(b.model_a_id, b.model_b_id), greatest(b.model_a_id, b.model_b_id);
"""


def _backfill() -> Any:
    """The style-cell backfill of migration 0011: the same code fills the cells here."""
    path = Path(__file__).parents[1] / "migrations" / "versions" / "0011_style_cells_backfill.py"
    spec = importlib.util.spec_from_file_location("backfill_0011", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.backfill


def add_models(url: str) -> None:
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("INSERT INTO models (slug, display_name, organisation, description, backend_kind, config, "
                     "status, created_at) SELECT 'bench-' || g, 'Bench ' || g, 'Bench', '', 'openai', '{}', "
                     "'active', now() FROM generate_series(1, %s) g", (MODELS,))


def fill(url: str, votes: int, seed: int) -> float:
    """Adds `votes` voted battles, then rebuilds the pair counts and the style cells; returns seconds."""
    started = time.perf_counter()
    with psycopg.connect(libpq_url(url)) as conn:
        params = {"seed": (seed % 1999) / 1000 - 0.999, "n": MODELS, "votes": votes}  # setseed takes [-1, 1]
        for statement in filter(str.strip, _FILL.split(";\n")):
            conn.execute(statement, params if "%(" in statement else None)
        for statement in filter(str.strip, _PAIRS.split(";\n")):
            conn.execute(statement.replace("%%", "%"))
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.begin() as bind:
            _backfill()(bind)
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return time.perf_counter() - started


async def _timed(work: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    """(seconds, peak MiB traced) of one call; the time is taken without tracing (it slows Python down)."""
    gc.collect()
    started = time.perf_counter()
    await work()
    seconds = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()
    try:
        await work()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak / 2**20


async def _snapshot_cost(sessions: Any, settings: Settings) -> tuple[float, float]:
    async def snapshot() -> None:
        await take_snapshot(sessions, settings, "benchmark")

    return await _timed(snapshot)


async def _votes_held_s(sessions: Any) -> float:
    """How long a snapshot holds new votes back: from asking for the votes' lock until its reader has the
    view (jobs.share_view; no vote is in flight here, so the lock is granted at once)."""
    async with transaction(sessions) as reader:
        await reader.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        started = time.perf_counter()
        await share_view(sessions, reader)
        return time.perf_counter() - started


async def _row_read_cost(sessions: Any) -> tuple[float, float]:
    async def rows() -> None:
        async with transaction(sessions) as session:
            models = list(await registry.list_all(session))
            service.style_from_votes(models, await repository.helpfulness_votes_with_style(session))

    return await _timed(rows)


async def _equality(sessions: Any) -> dict[str, Any]:
    async with transaction(sessions) as session:
        models = list(await registry.list_all(session))
        cells = await repository.style_cells(session)
        from_rows = service.style_from_votes(models, await repository.helpfulness_votes_with_style(session))
    fit_cells = ranking.fit_style_controlled(service.style_from_cells(models, cells))
    fit_rows = ranking.fit_style_controlled(from_rows)
    rated = fit_rows.rated
    return {"style_cells": len(cells["bin"]),
            "style_max_abs_diff": float(np.max(np.abs(fit_cells.ratings[rated] - fit_rows.ratings[rated])))}


async def _measure(urls: dict[int, str], settings: Settings, repeats: int) -> dict[str, Any]:
    """Both sizes side by side, snapshots interleaved (small, large, small...): a busy machine's drift
    then weighs on both alike."""
    engines = {size: create_engine(url) for size, url in urls.items()}
    try:
        sessions = {size: create_sessionmaker(engine) for size, engine in engines.items()}
        runs: dict[int, list[tuple[float, float]]] = {size: [] for size in urls}
        held: dict[int, list[float]] = {size: [] for size in urls}
        for _ in range(repeats):
            for size in urls:
                runs[size].append(await _snapshot_cost(sessions[size], settings))
                held[size].append(await _votes_held_s(sessions[size]))
        out = {}
        for size in urls:
            read_s, read_mib = await _row_read_cost(sessions[size])  # once: it scales with the votes anyway
            out[str(size)] = {"snapshot_s": statistics.median(r[0] for r in runs[size]),
                              "snapshot_peak_mib": statistics.median(r[1] for r in runs[size]),
                              "votes_held_ms": round(statistics.median(held[size]) * 1000, 2),
                              "row_read_s": read_s, "row_read_peak_mib": read_mib,
                              **await _equality(sessions[size])}
        return out
    finally:
        for engine in engines.values():
            await engine.dispose()


def _database(server_url: str, name: str) -> str:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    url = sa.make_url(server_url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    add_models(url)
    return url


def measure(quick: bool) -> dict[str, Any]:
    sizes = (10_000, 100_000) if quick else (10_000, 1_000_000)
    settings = Settings(_env_file=None, database_url=None)
    folder = tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp")  # outside /root: see conftest
    with folder as home, embedded_postgres(Path(home) / "pg") as server:
        urls = {size: _database(server, f"votes_{size}") for size in sizes}
        fill_s = {size: fill(url, size, SEED + size) for size, url in urls.items()}
        sized = asyncio.run(_measure(urls, settings, QUICK_REPEATS if quick else REPEATS))
    for size in sizes:
        sized[str(size)]["fill_s"] = round(fill_s[size], 1)
    return report(sized, sizes)


def _ratio(sized: dict[str, Any], sizes: tuple[int, int], key: str) -> float:
    return sized[str(sizes[1])][key] / sized[str(sizes[0])][key]


def report(sized: dict[str, Any], sizes: tuple[int, int]) -> dict[str, Any]:
    small, large = (f"{n // 1000}k" if n < 1_000_000 else f"{n // 1_000_000}M" for n in sizes)
    time_ratio, memory_ratio = _ratio(sized, sizes, "snapshot_s"), _ratio(sized, sizes, "snapshot_peak_mib")
    diff = max(v["style_max_abs_diff"] for v in sized.values())
    rounded = {n: {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()} for n, row in sized.items()}
    return {
        "figures": {"sizes": list(sizes), "models": MODELS, "by_size": rounded,
                    "note": "snapshot = take_snapshot (read pair counts and style cells, fit with "
                            f"{Settings(_env_file=None).leaderboard_bootstrap_rounds} bootstrap rounds, store); "
                            f"median of {REPEATS} ({QUICK_REPEATS} with --quick), the sizes interleaved; peak = tracemalloc peak of one call; "
                            "row read: once per size"},
        "baseline": {f"row_read_s_{small}": sized[str(sizes[0])]["row_read_s"],
                     f"row_read_s_{large}": sized[str(sizes[1])]["row_read_s"],
                     f"row_read_peak_mib_{small}": sized[str(sizes[0])]["row_read_peak_mib"],
                     f"row_read_peak_mib_{large}": sized[str(sizes[1])]["row_read_peak_mib"],
                     "row_read_time_ratio": round(_ratio(sized, sizes, "row_read_s"), 3),
                     "row_read_memory_ratio": round(_ratio(sized, sizes, "row_read_peak_mib"), 3)},
        "targets": {
            f"snapshot_time_{large}_vs_{small}": {"value": round(time_ratio, 3), "goal": "<= 1.2",
                                                  "met": time_ratio <= 1.2},
            f"snapshot_memory_{large}_vs_{small}": {"value": round(memory_ratio, 3), "goal": "<= 1.2",
                                                    "met": memory_ratio <= 1.2},
            "style_ratings_cells_vs_rows_max_abs_diff": {"value": diff, "goal": "<= 1e-9", "met": diff <= 1e-9},
        },
    }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:])))
