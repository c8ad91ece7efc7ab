"""The pair draw's cost against the number of models (issue 11, item 5, at the scale of a large arena):
the draw every battle makes (`arena.pairing.draw_on`, on the driver's connection, as the battle path
calls it) and the record it stores, at 8 and 100 active models (--quick; the full run adds 30), on an
embedded Postgres in a temp folder. Every pair has helpfulness counts and a score, as in a settled arena.

The baseline, measured in the same run at each size, is the cold draw: the process's copy of the scores
dropped before each draw, so that every draw reads and orders all n(n-1)/2 scores, as each battle did
before the copy was kept. The targets are the project's own (no issue names a number): the draw's CPU
and its record may grow with the number of models, not with its square.

    python -m benchmarks.arena_draw [--quick]

Prints one JSON object last: {"figures", "baseline", "targets"}.
"""

import asyncio
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import sqlalchemy as sa

from arena import pairing
from benchmarks.arena import own_cpu_s
from core.db import create_engine, create_sessionmaker, driver_connection, libpq_url, transaction
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from core.settings import Settings

ROUNDS = 7
DRAWS_PER_ROUND = 20
SEED = 20261202


def _database(server_url: str, models: int) -> str:
    """A database with `models` active models and helpfulness counts on every pair."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE draw_{models}")
    url = sa.make_url(server_url).set(database=f"draw_{models}").render_as_string(hide_password=False)
    upgrade(url)
    rng = np.random.default_rng([SEED, models])
    with psycopg.connect(libpq_url(url)) as conn:
        conn.execute("INSERT INTO models (slug, display_name, organisation, description, backend_kind, config, "
                     "status, created_at) SELECT 'bench-' || g, 'Bench ' || g, 'Bench', '', 'openai', "
                     "'{\"kind\": \"openai\", \"base_url\": \"http://127.0.0.1:9/v1\", \"model\": \"m\"}', "
                     "'active', now() FROM generate_series(1, %s) g", (models,))
        ids = [row[0] for row in conn.execute("SELECT id FROM models ORDER BY id").fetchall()]
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO pair_counts (dimension, model_lo_id, model_hi_id, lo_wins, hi_wins, ties, both_bad) "
                "VALUES ('helpfulness', %s, %s, %s, %s, %s, 0)",
                [(lo, hi, *(int(x) for x in rng.integers(5, 40, size=3))) for lo, hi in itertools.combinations(ids, 2)])
    return url


async def _measure(url: str, settings: Settings) -> dict[str, Any]:
    engine = create_engine(url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            version, pairs = await pairing.refresh_scores(session)
        async with driver_connection(engine) as conn:
            record = (await pairing.draw_on(conn, np.random.default_rng(0), settings)).record

            async def rounds(cold: bool) -> tuple[float, float]:
                walls, cpus = [], []
                for r in range(ROUNDS):
                    wall, cpu = 0.0, 0.0
                    for i in range(DRAWS_PER_ROUND):
                        if cold:
                            pairing._cache = pairing._ScoreCache()
                        began, began_cpu = time.perf_counter(), own_cpu_s()
                        await pairing.draw_on(conn, np.random.default_rng([r, i]), settings)
                        wall, cpu = wall + time.perf_counter() - began, cpu + own_cpu_s() - began_cpu
                    walls.append(wall / DRAWS_PER_ROUND * 1000)
                    cpus.append(cpu / DRAWS_PER_ROUND * 1000)
                return statistics.median(walls), statistics.median(cpus)

            warm_wall, warm_cpu = await rounds(cold=False)
            cold_wall, cold_cpu = await rounds(cold=True)
    finally:
        await engine.dispose()
    return {"pairs_scored": pairs, "scores_version": version, "record_bytes": len(json.dumps(record)),
            "draw_wall_ms": round(warm_wall, 3), "draw_cpu_ms": round(warm_cpu, 3),
            "cold_draw_wall_ms": round(cold_wall, 3), "cold_draw_cpu_ms": round(cold_cpu, 3)}


def measure(quick: bool) -> dict[str, Any]:
    sizes = (8, 100) if quick else (8, 30, 100)
    settings = Settings(_env_file=None, database_url=None)
    folder = tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp")  # outside /root: see conftest
    with folder as home, embedded_postgres(Path(home) / "pg") as server:
        by_size = {n: asyncio.run(_measure(_database(server, n), settings)) for n in sizes}
    return report(by_size)


def report(by_size: dict[int, dict[str, Any]]) -> dict[str, Any]:
    small, large = min(by_size), max(by_size)
    linear = large / small

    def ratio(key: str) -> float:
        return round(by_size[large][key] / by_size[small][key], 3)

    cpu, record = ratio("draw_cpu_ms"), ratio("record_bytes")
    return {
        "figures": {"by_models": {str(n): {k: v for k, v in row.items() if not k.startswith("cold_")}
                                  for n, row in by_size.items()},
                    "note": f"draw_on on one connection, medians of {ROUNDS} rounds of {DRAWS_PER_ROUND} draws; "
                            "CPU is this process's (Postgres's time is in the wall time); active policy, "
                            "every pair scored"},
        "baseline": {"by_models": {str(n): {k: v for k, v in row.items() if k.startswith("cold_")}
                                   for n, row in by_size.items()},
                     "note": "cold draw: the process's copy of the scores dropped before each draw"},
        "targets": {
            f"draw_cpu_{large}_vs_{small}_models": {"value": cpu, "goal": f"<= {linear:g} (linear in models)",
                                                    "met": cpu <= linear},
            f"draw_record_bytes_{large}_vs_{small}_models": {"value": record,
                                                             "goal": f"<= {linear:g} (linear in models)",
                                                             "met": record <= linear},
        },
    }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:])))
