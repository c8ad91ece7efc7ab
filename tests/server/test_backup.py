"""`libra backup` and `libra restore` on the real embedded Postgres: a database filled through the service
comes back row for row in every table (procrastinate's and alembic_version included), and every failure
is one clear line that leaves the database as it was."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import psycopg
import pytest
from sqlalchemy import make_url

from core import backup as backups
from core.db import libpq_url, transaction
from core.errors import LibraError
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.settings import Settings
from server.leaderboard.jobs import take_snapshot
from server.seed import seed_defaults
from tests.conftest import database_url

LIBRA = str(Path(sys.executable).with_name("libra"))
SUBMISSION = {"slug": "lab-model", "display_name": "Lab Model", "organisation": "Lab",
              "config": {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}}
# Tables the filled database must hold rows in, so that "every table matches" is never about empty tables.
MUST_HAVE_ROWS = ("public.alembic_version", "public.models", "public.battles", "public.votes",
                  "public.pair_counts", "public.leaderboard_snapshots", "public.procrastinate_jobs", "public.api_keys",
                  "public.audit_log")


@pytest.fixture
def settings() -> Settings:  # overrides tests/conftest.py: votes are cast as fast as a test can
    return Settings(_env_file=None, database_url=None, leaderboard_bootstrap_rounds=50, arena_read_words_per_s=1e9,
                    arena_one_sided_votes=10**6, arena_burst_votes=10**6, rate_votes=0, rate_battles=0)


@pytest.fixture
def fresh_url(pg_server: str) -> str:
    """An empty database (no template, no migrations): where a backup is restored."""
    name = f"restored_{os.getpid()}"
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield database_url(pg_server, name)
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


async def _fill(client, runtime) -> None:
    """Models, keys, a submission (an audit row and a queued evaluation job), battles, votes, a queued
    recompute job and a leaderboard snapshot, all through the service."""
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        submitter = await create_key(session, "lab", KeyScope.submitter, actor="test")
        admin = await create_key(session, "ops", KeyScope.admin, actor="test")
    submitted = await client.post("/api/v1/models", json=SUBMISSION,
                                  headers={"Authorization": f"Bearer {submitter.plaintext}"})
    assert submitted.status_code == 201, submitted.text
    rng = np.random.default_rng(13)
    for _ in range(6):
        battle = (await client.post("/api/v1/battles", json={"prompt": "How do plants make food?"})).json()
        verdict = str(rng.choice(["a", "b", "tie", "both_bad"]))
        voted = await client.post(f"/api/v1/battles/{battle['id']}/vote",
                                  json={"helpfulness": verdict, "safety": verdict})
        assert voted.status_code == 200, voted.text
    queued = await client.post("/api/v1/admin/leaderboard/recompute",
                               headers={"Authorization": f"Bearer {admin.plaintext}"})
    assert queued.status_code == 202
    assert await take_snapshot(runtime.sessions, runtime.settings, "manual") is not None


def everything(url: str) -> dict[str, list[str]]:
    """Every table's rows (as text, sorted) and every sequence's position, in all non-system schemas."""
    with psycopg.connect(libpq_url(url)) as conn:
        relations = conn.execute(
            "SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relkind FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p', 'S') "
            "AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'").fetchall()
        found = {}
        for name, kind in relations:
            query = (f"SELECT last_value::text || '/' || is_called::text FROM {name}" if kind == "S"
                     else f"SELECT t::text FROM {name} t ORDER BY 1")
            found[name] = [row[0] for row in conn.execute(query).fetchall()]
    return found


def libra(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "LIBRA_DATABASE_URL": db_url}
    return subprocess.run([LIBRA, *args], check=False, capture_output=True, text=True, env=env, timeout=120)


async def test_round_trip_restores_every_row_of_every_table(client, runtime, db_url, fresh_url, tmp_path) -> None:
    await _fill(client, runtime)
    before = everything(db_url)
    assert all(before[table] for table in MUST_HAVE_ROWS), {t: len(before[t]) for t in MUST_HAVE_ROWS}
    file = tmp_path / "libra.dump"

    made = libra(db_url, "backup", str(file))
    assert made.returncode == 0, made.stderr
    assert "backed up to" in made.stdout and file.stat().st_size > 0
    restored = libra(fresh_url, "restore", str(file))
    assert restored.returncode == 0, restored.stderr
    assert "restored" in restored.stdout and "newer version" not in restored.stderr  # this code's own revision
    assert everything(fresh_url) == before

    with pytest.raises(LibraError, match="--force"):  # it holds Libra data now
        backups.restore(fresh_url, file)
    with pytest.raises(LibraError, match="exists"):
        backups.backup(db_url, file)


async def test_force_replaces_everything_and_a_damaged_file_changes_nothing(client, runtime, db_url, tmp_path) -> None:
    await _fill(client, runtime)
    file = tmp_path / "libra.dump"
    backups.backup(db_url, file)
    before = everything(db_url)
    with psycopg.connect(libpq_url(db_url)) as conn:  # after the backup: a new table, a new row
        conn.execute("CREATE TABLE stray (x int)")
        conn.execute("DELETE FROM alembic_version")
    changed = everything(db_url)
    with pytest.raises(LibraError, match="--force"):
        backups.restore(db_url, file)

    truncated = tmp_path / "truncated.dump"  # the table of contents intact, the data cut short
    truncated.write_bytes(file.read_bytes()[: file.stat().st_size * 2 // 3])
    with pytest.raises(LibraError, match="damaged|not changed"):
        backups.restore(db_url, truncated, force=True)
    assert everything(db_url) == changed  # one transaction: nothing of the failed restore stays

    assert backups.restore(db_url, file, force=True) is not None
    assert everything(db_url) == before  # the stray table is gone, the deleted row is back


def test_clear_errors_for_files_and_paths(db_url, tmp_path) -> None:
    tools = backups.pick_toolset(backups.available_toolsets(), backups.server_major(backups.Target.from_url(db_url)))
    cases = {
        tmp_path / "missing.dump": "does not exist",
        tmp_path: "not a file",
    }
    (tmp_path / "random.dump").write_bytes(np.random.default_rng(1).bytes(4096))
    cases[tmp_path / "random.dump"] = "not a backup"
    (tmp_path / "damaged.dump").write_bytes(backups.DUMP_MAGIC + b"\x01" * 64)
    cases[tmp_path / "damaged.dump"] = "damaged or unreadable|no Libra database"
    for path, message in cases.items():
        with pytest.raises(LibraError, match=message):
            backups.check_archive(tools, path)
    for path, message in {tmp_path / "no" / "such" / "x.dump": "does not exist", tmp_path: "is a folder"}.items():
        with pytest.raises(LibraError, match=message):
            backups.backup(db_url, path)


def test_an_empty_database_is_not_backed_up(fresh_url, tmp_path) -> None:
    with pytest.raises(LibraError, match="no Libra data"):
        backups.backup(fresh_url, tmp_path / "x.dump")
    assert not list(tmp_path.iterdir())  # no half-written file either


def test_the_password_stays_off_command_lines_and_out_of_errors(tmp_path) -> None:
    target = backups.Target.from_url("postgresql://libra:s3cret-pw@db.example:6543/arena?sslmode=require")
    assert "s3cret-pw" not in target.conninfo and "sslmode=require" in target.conninfo
    assert target.env()["PGPASSWORD"] == "s3cret-pw"
    unreachable = libra("postgresql://libra:s3cret-pw@127.0.0.1:1/libra", "backup", str(tmp_path / "x.dump"))
    assert unreachable.returncode == 1 and "cannot reach the database" in unreachable.stderr
    assert "s3cret-pw" not in unreachable.stderr + unreachable.stdout and "Traceback" not in unreachable.stderr


def test_tools_are_never_older_than_the_server(db_url) -> None:
    found = backups.available_toolsets()
    server = backups.server_major(backups.Target.from_url(db_url))
    assert backups.pick_toolset(found, server).major >= server  # the embedded package's own fits its server
    folder = Path("/x")
    older_and_newer = [backups.Toolset(folder, 15), backups.Toolset(folder, 18), backups.Toolset(folder, 16)]
    assert backups.pick_toolset(older_and_newer, 16).major == 16
    assert backups.pick_toolset(older_and_newer, 17).major == 18
    with pytest.raises(LibraError, match="postgresql-client-19"):
        backups.pick_toolset(older_and_newer, 19)


def test_an_external_server_url_with_a_password_works(pg_server, db_url, fresh_url, tmp_path) -> None:
    """The same commands through a URL with user and password (the embedded server trusts its socket,
    so this shows the plumbing: the password travels as PGPASSWORD, the user and database as given)."""
    with psycopg.connect(libpq_url(pg_server), autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS backup_tester")
        conn.execute("CREATE ROLE backup_tester LOGIN SUPERUSER PASSWORD 'pw-123'")
    as_role = make_url(db_url).set(username="backup_tester", password="pw-123").render_as_string(hide_password=False)
    file = tmp_path / "b.dump"
    backups.backup(as_role, file)
    backups.restore(make_url(fresh_url).set(username="backup_tester", password="pw-123")
                    .render_as_string(hide_password=False), file)
    assert everything(fresh_url) == everything(db_url)
