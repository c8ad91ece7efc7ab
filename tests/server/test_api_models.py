"""The models API against a real database: listing, submission with keys, retirement, errors."""

import pytest

from core.db import transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from server.seed import seed_defaults

# What a submitter key may register: a public https endpoint (tests/server/test_submission_security.py).
GOOD_CONFIG = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}


async def _key(runtime, scope: KeyScope) -> dict[str, str]:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


def _submission(slug: str = "my-model", config: dict | None = None) -> dict:
    return {"slug": slug, "display_name": "My Model", "organisation": "Lab", "config": config or GOOD_CONFIG}


async def test_defaults_are_listed_and_detail_hides_config(client, runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        added = await seed_defaults(session)
    assert len(added) >= 4
    listed = (await client.get("/api/v1/models")).json()
    assert [m["slug"] for m in listed] == added
    detail = (await client.get(f"/api/v1/models/{added[0]}")).json()
    assert detail["status"] == "active" and "config" not in detail


async def test_submitter_key_submits_a_pending_model(client, runtime) -> None:  # noqa: ANN001
    response = await client.post("/api/v1/models", json=_submission(), headers=await _key(runtime, KeyScope.submitter))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    again = await client.post("/api/v1/models", json=_submission(), headers=await _key(runtime, KeyScope.submitter))
    assert again.status_code == 409


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer libra_nope_nope"}, {"Authorization": "Basic x"}])
async def test_submission_without_a_valid_key_is_401(client, headers) -> None:  # noqa: ANN001
    response = await client.post("/api/v1/models", json=_submission(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_invalid_backend_config_is_422_naming_the_field(client, runtime) -> None:  # noqa: ANN001
    headers = await _key(runtime, KeyScope.submitter)
    unknown = await client.post("/api/v1/models", json=_submission(config={"kind": "quantum"}), headers=headers)
    assert unknown.status_code == 422 and unknown.json()["error"]["field"].startswith("config")
    bad = {**GOOD_CONFIG, "max_concurrency": -3}
    response = await client.post("/api/v1/models", json=_submission(config=bad), headers=headers)
    assert response.status_code == 422
    assert "max_concurrency" in response.json()["error"]["field"]


async def test_bad_slug_and_malformed_json_are_422(client, runtime) -> None:  # noqa: ANN001
    headers = await _key(runtime, KeyScope.submitter)
    response = await client.post("/api/v1/models", json=_submission(slug="Bad Slug!"), headers=headers)
    assert response.status_code == 422 and response.json()["error"]["field"] == "slug"
    broken = await client.post("/api/v1/models", content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 422 and broken.json()["error"]["field"] == "body"


async def test_only_admins_retire_and_retiring_is_audited(client, runtime) -> None:  # noqa: ANN001
    submitter = await _key(runtime, KeyScope.submitter)
    await client.post("/api/v1/models", json=_submission(), headers=submitter)
    assert (await client.post("/api/v1/models/my-model/retire", headers=submitter)).status_code == 403
    admin = await _key(runtime, KeyScope.admin)
    retired = await client.post("/api/v1/models/my-model/retire", headers=admin)
    assert retired.status_code == 200 and retired.json()["status"] == "retired"
    assert retired.json()["retired_at"] is not None
    assert (await client.post("/api/v1/models/my-model/retire", headers=admin)).status_code == 409
    from core.audit.repository import latest

    async with transaction(runtime.sessions) as session:
        actions = [e.action for e in await latest(session)]
    assert "model.retired" in actions and "model.registered" in actions


async def test_unknown_model_and_route_use_the_error_shape(client) -> None:  # noqa: ANN001
    missing = await client.get("/api/v1/models/nobody")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    assert (await client.get("/api/v1/nothing-here")).status_code == 404


async def test_health_and_readiness(client) -> None:  # noqa: ANN001
    assert (await client.get("/api/v1/healthz")).json() == {"status": "ok"}
    assert (await client.get("/api/v1/readyz")).json()["database"] == "ok"
    assert (await client.get("/openapi.json")).status_code == 200
