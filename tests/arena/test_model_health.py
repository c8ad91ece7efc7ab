"""Models that fail in a row are paused from pairing until an admin resumes them (issue 11, item 6),
on the real database, through the service, the admin API and the CLI."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from arena import health, pairing
from arena import pairing_repository as repo
from arena.models import Battle, ModelHealth
from core.db import transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from server.contestants import register
from server.seed import seed_defaults

SETTINGS = Settings(_env_file=None, database_url=None, arena_failures_to_pause=3, arena_pairing="uniform")
# A closed local port and a key that is never set: the side fails at once, without a network.
KEYLESS = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "LIBRA_TEST_UNSET_KEY"}


@pytest.fixture
async def models(runtime) -> dict[str, int]:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return {m.slug: m.id for m in await registry.list_all(session, ContestantStatus.active)}


async def _answer(runtime, model_id: int, ok: bool) -> None:
    async with transaction(runtime.sessions) as session:
        await health.record_answer(session, model_id, ok, None if ok else "the model timed out", SETTINGS)


async def _health(runtime, model_id: int) -> ModelHealth | None:
    async with transaction(runtime.sessions) as session:
        return await session.get(ModelHealth, model_id)


async def test_a_success_resets_the_run_and_the_limit_pauses(runtime, models, caplog) -> None:
    model_id = min(models.values())
    for ok in (False, False, True, False, False):
        await _answer(runtime, model_id, ok)
    found = await _health(runtime, model_id)
    assert found.failures_in_row == 2 and found.paused_at is None and found.last_error == "the model timed out"
    with caplog.at_level(logging.INFO, logger="arena.health"):
        await _answer(runtime, model_id, False)
        await _answer(runtime, model_id, False)  # already paused: it stays paused, logged once
    found = await _health(runtime, model_id)
    assert found.failures_in_row == 4 and found.paused_at is not None
    assert [r.getMessage() for r in caplog.records].count("arena.model.paused") == 1
    await _answer(runtime, model_id, True)  # a late success ends the run but not the pause
    assert (await _health(runtime, model_id)).paused_at is not None


async def test_a_healthy_model_writes_no_health_row(runtime, models) -> None:
    await _answer(runtime, min(models.values()), True)
    assert await _health(runtime, min(models.values())) is None


async def test_a_paused_model_is_never_drawn_until_resumed(runtime, models) -> None:
    paused_id = min(models.values())
    for _ in range(3):
        await _answer(runtime, paused_id, False)
    async with transaction(runtime.sessions) as session:
        draws = [await pairing.draw(session, np.random.default_rng([3, i]), SETTINGS) for i in range(300)]
        assert all(paused_id not in (d.model_a.id, d.model_b.id) for d in draws)
        assert paused_id not in (await pairing.draw_inputs(session, np.random.default_rng(1), SETTINGS))[0]["models"]
    async with transaction(runtime.sessions) as session:
        await health.resume(session, next(s for s, i in models.items() if i == paused_id))
    assert (await _health(runtime, paused_id)).failures_in_row == 0
    async with transaction(runtime.sessions) as session:
        draws = [await pairing.draw(session, np.random.default_rng([3, i]), SETTINGS) for i in range(100)]
    assert any(paused_id in (d.model_a.id, d.model_b.id) for d in draws)


async def _key(runtime, scope: KeyScope = KeyScope.admin) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def test_battles_pause_a_failing_model_and_admins_resume_it(client, runtime, models, monkeypatch) -> None:
    monkeypatch.delenv("LIBRA_TEST_UNSET_KEY", raising=False)
    async with transaction(runtime.sessions) as session:
        entry = ContestantIn(slug="keyless-one", display_name="keyless-one", organisation="t", config=KEYLESS)
        broken = (await register(session, entry, ContestantStatus.active, actor="test")).id
        await repo.set_weight(session, broken, 1000.0, "draw it", "test")  # nearly every battle includes it
    statuses = []
    while statuses.count("failed") < 3 and len(statuses) < 20:  # the weight makes nearly every draw include it
        statuses.append((await client.post("/api/v1/battles", json={"prompt": "hello"})).json()["status"])
    assert statuses.count("failed") == 3
    admin = await _key(runtime)
    listed = await client.get("/api/v1/admin/arena/paused", headers=admin)
    assert listed.status_code == 200
    assert [(p["slug"], p["failures_in_row"]) for p in listed.json()] == [("keyless-one", 3)]
    assert listed.json()[0]["last_error"] == "the model is unavailable right now"
    for _ in range(5):
        assert (await client.post("/api/v1/battles", json={"prompt": "hello"})).json()["status"] == "ready"
    async with transaction(runtime.sessions) as session:
        battles = (await session.scalars(select(Battle).order_by(Battle.created_at))).all()
    assert all(broken not in (b.model_a_id, b.model_b_id) for b in battles[len(statuses):])
    weights = {w["slug"]: w for w in (await client.get("/api/v1/admin/arena/weights", headers=admin)).json()}
    assert weights["keyless-one"]["paused"] is True
    resumed = await client.post("/api/v1/admin/arena/paused/keyless-one/resume", headers=admin)
    assert resumed.status_code == 200 and resumed.json() == []
    again = await client.post("/api/v1/admin/arena/paused/keyless-one/resume", headers=admin)
    assert again.status_code == 409
    unknown = await client.post("/api/v1/admin/arena/paused/nobody/resume", headers=admin)
    assert unknown.status_code == 404


async def test_paused_endpoints_need_an_admin_key(client, runtime, models) -> None:
    assert (await client.get("/api/v1/admin/arena/paused")).status_code == 401
    submitter = await _key(runtime, KeyScope.submitter)
    assert (await client.get("/api/v1/admin/arena/paused", headers=submitter)).status_code == 403
    slug = min(models)
    assert (await client.post(f"/api/v1/admin/arena/paused/{slug}/resume", headers=submitter)).status_code == 403
    assert (await client.post(f"/api/v1/admin/arena/paused/{slug}/resume")).status_code == 401


LIBRA = str(Path(sys.executable).with_name("libra"))


def _libra(db_url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LIBRA, "arena", *args], check=False, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "LIBRA_DATABASE_URL": db_url})


async def test_the_cli_lists_sets_weights_and_resumes(runtime, models, db_url) -> None:
    slug = min(models)
    for _ in range(3):
        await _answer(runtime, models[slug], False)
    paused = _libra(db_url, "paused")
    assert paused.returncode == 0, paused.stderr
    assert slug in paused.stdout and "the model timed out" in paused.stdout
    changed = _libra(db_url, "set-weight", slug, "2.5", "--note", "more")
    assert changed.returncode == 0 and f"{slug}: weight 2.5" in changed.stdout, changed.stderr
    listed = _libra(db_url, "weights")
    assert any(line.startswith(slug) and "2.5" in line and "paused" in line for line in listed.stdout.splitlines())
    bad = _libra(db_url, "set-weight", slug, "--", "-1")
    assert bad.returncode != 0 and "weight" in bad.stderr and "greater than or equal to 0" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert _libra(db_url, "resume", slug).returncode == 0
    assert "no model is paused" in _libra(db_url, "paused").stdout
    again = _libra(db_url, "resume", slug)
    assert again.returncode != 0 and "not paused" in again.stderr
    assert _libra(db_url, "resume", "nobody").returncode != 0
