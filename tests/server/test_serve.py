"""`libra serve` and `libra worker` as real processes."""

import os
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from core.db import libpq_url
from tests.conftest import scratch_root
from tests.server.livesite import LIBRA, serving, stop


def _postgres_processes(folder: Path) -> list[str]:
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return [line for line in ps.splitlines() if "postgres" in line and str(folder) in line]


def test_serve_on_embedded_postgres_prints_url_and_ctrl_c_leaves_no_postgres() -> None:
    home = scratch_root() / f"libra-serve-{uuid.uuid4().hex[:8]}"
    env = {"LIBRA_HOME": str(home), "LIBRA_DATABASE_URL": ""}
    with serving(env) as (base_url, process):
        assert _postgres_processes(home / "pg")
        models = httpx.get(f"{base_url}/api/v1/models").json()
        assert len(models) >= 4 and all(m["status"] == "active" for m in models)
        assert "Libra Arena" in httpx.get(f"{base_url}/").text
        assert httpx.get(f"{base_url}/docs").status_code == 200
    assert process.returncode == 0, process.stderr.read()
    assert "http://127.0.0.1:" in process.stdout.read()
    assert not _postgres_processes(home / "pg")


def _insert_stale_battle(db_url: str) -> uuid.UUID:
    battle_id = uuid.uuid4()
    with psycopg.connect(libpq_url(db_url)) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM models ORDER BY id LIMIT 2")]
        conn.execute(
            "INSERT INTO battles (id, prompt, status, model_a_id, model_b_id, sampling_seed, created_at) "
            "VALUES (%s, 'left behind by a crash', 'generating', %s, %s, 1, %s)",
            (battle_id, ids[0], ids[1], datetime.now(UTC) - timedelta(hours=1)),
        )
    return battle_id


def _status(db_url: str, battle_id: uuid.UUID) -> str:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT status FROM battles WHERE id = %s", (battle_id,)).fetchone()[0]


def test_periodic_housekeeping_runs_under_libra_worker(db_url: str) -> None:
    env = {**os.environ, "LIBRA_DATABASE_URL": db_url, "LIBRA_HOUSEKEEPING_CRON": "* * * * * */1"}
    assert subprocess.run([LIBRA, "models", "list"], env=env, capture_output=True).returncode == 0
    subprocess.run([LIBRA, "db", "upgrade"], env=env, check=True, capture_output=True)
    with psycopg.connect(libpq_url(db_url)) as conn:  # two contestants for the battle's foreign keys
        for slug in ("m-one", "m-two"):
            conn.execute("INSERT INTO models (slug, display_name, organisation, description, backend_kind, "
                         "config, status, created_at) VALUES (%s, %s, 'o', '', 'openai', '{}', 'active', now())",
                         (slug, slug))
    battle_id = _insert_stale_battle(db_url)
    worker = subprocess.Popen([LIBRA, "worker"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while _status(db_url, battle_id) != "failed" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _status(db_url, battle_id) == "failed"
    finally:
        code = stop(worker)
    with psycopg.connect(libpq_url(db_url)) as conn:
        done = conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE task_name = 'arena:fail_stale_battles' "
                            "AND status = 'succeeded'").fetchone()[0]
    assert done >= 1
    assert code == 0, worker.stderr.read()
