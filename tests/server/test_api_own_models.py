"""`GET /me/models` as the submit page reads it: the key's own models only, and each queued evaluation's
place in the job queue, read from the real queue (procrastinate's jobs on the embedded Postgres)."""

import psycopg

from core.db import libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key

# What a submitter key may register: a public https endpoint (tests/server/test_submission_security.py).
GOOD_CONFIG = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}


async def _key(runtime, scope: KeyScope = KeyScope.submitter) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def _submit(client, headers: dict[str, str], slug: str) -> None:
    body = {"slug": slug, "display_name": slug.title(), "organisation": "Lab", "config": GOOD_CONFIG}
    response = await client.post("/api/v1/models", json=body, headers=headers)
    assert response.status_code == 201, response.text


async def _mine(client, headers: dict[str, str]) -> dict[str, dict]:
    response = await client.get("/api/v1/me/models", headers=headers)
    assert response.status_code == 200, response.text
    return {entry["model"]["slug"]: entry for entry in response.json()}


def _job_of(db_url: str, slug: str) -> int:
    with psycopg.connect(libpq_url(db_url)) as conn:
        return conn.execute("SELECT r.job_id FROM eval_runs r JOIN models m ON m.id = r.model_id "
                            "WHERE m.slug = %s ORDER BY r.id DESC LIMIT 1", (slug,)).fetchone()[0]


def _set_job(db_url: str, job_id: int, **fields: object) -> None:
    assignments = ", ".join(f"{name} = %s" for name in fields)
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute(f"UPDATE procrastinate_jobs SET {assignments} WHERE id = %s", (*fields.values(), job_id))


async def test_queued_evaluations_show_their_place_in_the_queue(client, runtime, db_url) -> None:
    mine, other = await _key(runtime), await _key(runtime)
    await _submit(client, other, "someone-else")
    await _submit(client, mine, "first-model")
    await _submit(client, mine, "second-model")
    listed = await _mine(client, mine)
    assert set(listed) == {"first-model", "second-model"}  # never another key's model
    assert listed["first-model"]["queue"] == {"run_id": listed["first-model"]["evaluation"]["latest_run"]["id"],
                                              "position": 2, "waiting": 3, "queue": "cpu"}
    assert listed["second-model"]["queue"]["position"] == 3
    assert listed["first-model"]["model"]["status"] == "pending"
    assert listed["first-model"]["evaluation"]["status"] == "pending"


async def test_the_position_follows_the_workers_order_priority_first(client, runtime, db_url) -> None:
    mine = await _key(runtime)
    for slug in ("early-model", "late-model"):
        await _submit(client, mine, slug)
    # A lower priority waits behind every job of a higher one (the first start's full runs do).
    _set_job(db_url, _job_of(db_url, "early-model"), priority=-1)
    listed = await _mine(client, mine)
    assert (listed["late-model"]["queue"]["position"], listed["early-model"]["queue"]["position"]) == (1, 2)
    # A job a worker has taken no longer waits: no position, and the next one moves up.
    _set_job(db_url, _job_of(db_url, "late-model"), status="doing")
    listed = await _mine(client, mine)
    assert listed["late-model"]["queue"] is None
    assert listed["early-model"]["queue"] == {**listed["early-model"]["queue"], "position": 1, "waiting": 1}


async def test_a_model_with_no_queued_run_has_no_position(client, runtime, db_url) -> None:
    mine = await _key(runtime)
    await _submit(client, mine, "done-model")
    with psycopg.connect(libpq_url(db_url)) as conn:
        conn.execute("UPDATE eval_runs SET status = 'failed', error = 'endpoint check failed, unreachable', "
                     "finished_at = now()")
    listed = await _mine(client, mine)
    entry = listed["done-model"]
    assert entry["queue"] is None
    # The owner reads the error in full (the public reads its category only).
    assert entry["evaluation"]["latest_run"]["error"] == "endpoint check failed, unreachable"


async def test_me_models_needs_a_valid_key(client, runtime) -> None:
    assert (await client.get("/api/v1/me/models")).status_code == 401
    bad = await client.get("/api/v1/me/models", headers={"Authorization": "Bearer libra_nope_nope"})
    assert bad.status_code == 401 and bad.json()["error"]["code"] == "unauthorized"
