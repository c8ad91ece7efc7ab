"""API keys: revocation and expiry take effect at the next request, admins list and revoke them over the
API and the CLI, and every admin-key use and key change lands in the audit log."""

import json
from datetime import timedelta

from sqlalchemy import select, update

from core.audit.models import AuditEvent
from core.db import transaction, utcnow
from core.keys.models import ApiKey, KeyScope
from core.keys.service import IssuedKey, create_key
from tests.server.test_cli import run


async def _issue(runtime, scope: KeyScope, name: str = "tester") -> IssuedKey:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        return await create_key(session, name, scope, actor="test")


def _secret_of(plaintext: str) -> str:
    """The key's secret part: everything after `libra_<prefix>_`. Not `split("_")[2]`, since
    token_urlsafe may itself hold "_" or begin with one (about 1 draw in 64)."""
    return plaintext.split("_", 2)[2]


def _bearer(key: IssuedKey) -> dict[str, str]:
    return {"Authorization": f"Bearer {key.plaintext}"}


async def _audit(runtime, action: str) -> list[AuditEvent]:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


async def test_admin_lists_keys_without_hashes_or_secrets(client, runtime) -> None:  # noqa: ANN001
    admin = await _issue(runtime, KeyScope.admin, "ops")
    submitter = await _issue(runtime, KeyScope.submitter, "lab")
    response = await client.get("/api/v1/admin/keys", headers=_bearer(admin))
    assert response.status_code == 200, response.text
    rows = response.json()
    assert [(r["id"], r["name"], r["scope"]) for r in rows] == [(admin.id, "ops", "admin"),
                                                               (submitter.id, "lab", "submitter")]
    secret = _secret_of(submitter.plaintext)
    assert "hash" not in response.text and secret not in response.text
    rows = (await client.get("/api/v1/admin/keys", headers=_bearer(admin))).json()
    assert rows[0]["last_used_at"] is not None and rows[1]["last_used_at"] is None
    assert (await client.get("/api/v1/admin/keys", headers=_bearer(submitter))).status_code == 403


async def test_a_revoked_key_gets_401_on_its_next_request(client, runtime) -> None:  # noqa: ANN001
    admin = await _issue(runtime, KeyScope.admin)
    other = await _issue(runtime, KeyScope.admin, "other")
    assert (await client.get("/api/v1/admin/keys", headers=_bearer(other))).status_code == 200
    revoked = await client.post(f"/api/v1/admin/keys/{other.id}/revoke", headers=_bearer(admin))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await client.get("/api/v1/admin/keys", headers=_bearer(other))
    assert after.status_code == 401 and after.json()["error"]["code"] == "unauthorized"
    assert "revoked" in after.json()["error"]["message"]
    again = await client.post(f"/api/v1/admin/keys/{other.id}/revoke", headers=_bearer(admin))
    assert again.status_code == 409
    missing = await client.post("/api/v1/admin/keys/99999/revoke", headers=_bearer(admin))
    assert missing.status_code == 404


async def test_an_expired_key_gets_401(client, runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        soon = await create_key(session, "temp", KeyScope.admin, actor="test", expires_in_days=1)
        stored = await session.get(ApiKey, soon.id)
        assert stored.expires_at > utcnow() + timedelta(hours=23)
    assert (await client.get("/api/v1/admin/keys", headers=_bearer(soon))).status_code == 200
    async with transaction(runtime.sessions) as session:
        await session.execute(update(ApiKey).where(ApiKey.id == soon.id).values(expires_at=utcnow()))
    expired = await client.get("/api/v1/admin/keys", headers=_bearer(soon))
    assert expired.status_code == 401 and "expired" in expired.json()["error"]["message"]


async def test_admin_key_use_and_key_changes_are_audited(client, runtime) -> None:  # noqa: ANN001
    admin = await _issue(runtime, KeyScope.admin)
    submitter = await _issue(runtime, KeyScope.submitter)
    await client.get("/api/v1/admin/keys", headers=_bearer(admin))
    # A failed action is audited too: the use is committed on its own.
    await client.post("/api/v1/admin/keys/424242/revoke", headers=_bearer(admin))
    await client.post(f"/api/v1/admin/keys/{submitter.id}/revoke", headers=_bearer(admin))
    used = await _audit(runtime, "key.used")
    assert [(u.actor, u.details["method"], u.details["path"]) for u in used] == [
        (f"key:{admin.id}", "GET", "/api/v1/admin/keys"),
        (f"key:{admin.id}", "POST", "/api/v1/admin/keys/424242/revoke"),
        (f"key:{admin.id}", "POST", f"/api/v1/admin/keys/{submitter.id}/revoke"),
    ]
    created = {e.target for e in await _audit(runtime, "key.created")}
    assert {f"key:{admin.id}", f"key:{submitter.id}"} <= created
    revoked = await _audit(runtime, "key.revoked")
    assert [(r.actor, r.target) for r in revoked] == [(f"key:{admin.id}", f"key:{submitter.id}")]


def test_keys_list_and_revoke_from_the_cli(db_url: str) -> None:
    env = {"LIBRA_DATABASE_URL": db_url}
    created = run("keys", "create", "--scope", "submitter", "--name", "lab", "--expires-in-days", "7", env=env)
    assert created.returncode == 0, created.stderr
    secret = created.stdout.strip()
    listed = run("keys", "list", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "lab" in listed.stdout and "active" in listed.stdout and _secret_of(secret) not in listed.stdout
    key_id = json.loads(run("keys", "list", "--json", env=env).stdout)[0]["id"]
    revoked = run("keys", "revoke", str(key_id), env=env)
    assert revoked.returncode == 0, revoked.stderr
    rows = json.loads(run("keys", "list", "--json", env=env).stdout)
    assert rows[0]["state"] == "revoked" and rows[0]["expires_at"] and "secret_hash" not in rows[0]
    again = run("keys", "revoke", str(key_id), env=env)
    assert again.returncode != 0 and "already revoked" in again.stderr and "Traceback" not in again.stderr
    bad = run("keys", "create", "--scope", "admin", "--expires-in-days", "0", env=env)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
