"""Submitted models cannot reach the server's secrets or network (docs/security.md), against a real
database, a real worker and a real HTTP endpoint on loopback that records what it receives."""

import logging
import os
import stat

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from core import secrets
from core.db import transaction
from core.errors import LibraError
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.settings import Settings
from tests.inference.test_egress import stub_endpoint

OWN_KEY = "sk-own-endpoint-key-1234567890"
SERVER_SECRET = "server-side-secret-value-0987654321"


@pytest.fixture
def settings(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Settings:
    """Overrides tests/conftest.py; `allow` (indirect parameter) lets submitted endpoints reach 127.0.0.1."""
    allow = "127.0.0.1/32" if getattr(request, "param", None) == "allow" else ""
    monkeypatch.setenv("LIBRA_EGRESS_ALLOW", allow)  # read by the backend pool of the runtime fixture
    monkeypatch.setenv("SERVER_SECRET", SERVER_SECRET)
    return Settings(_env_file=None, database_url=None, home=tmp_path, secret_key=Fernet.generate_key().decode(),
                    allow_http_endpoints=True, egress_allow=allow, eval_suite="smoke", eval_items_per_task=2,
                    eval_held_out_per_task=0, eval_max_tokens=8)


async def _headers(runtime, scope: KeyScope) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


def _entry(slug: str, config: dict) -> dict:
    return {"slug": slug, "display_name": slug, "organisation": "Lab", "config": config}


async def _work(runtime) -> None:
    await runtime.jobs.run_worker_async(wait=False, install_signal_handlers=False,
                                        additional_context=runtime.job_context, queues=["cpu"])


HTTPS = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m"}


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({**HTTPS, "api_key_env": "LIBRA_DATABASE_URL"}, "config.api_key_env"),
        ({**HTTPS, "api_key_file": "/etc/shadow"}, "config.api_key_file"),
        ({**HTTPS, "egress": "any"}, "config.egress"),
        ({"kind": "llamacpp", "model": "smollm2-135m-instruct"}, "config.kind"),
        ({"kind": "vllm", "model": "/models/x"}, "config.kind"),
        ({"kind": "transformers", "model": "/models/x"}, "config.kind"),
    ],
)
async def test_a_submitter_may_not_configure_server_side_things(client, runtime, config, field) -> None:
    response = await client.post("/api/v1/models", json=_entry("sub-model", config),
                                 headers=await _headers(runtime, KeyScope.submitter))
    assert response.status_code == 403, response.text
    assert response.json()["error"] == {**response.json()["error"], "code": "forbidden", "field": field}
    admin = await client.post("/api/v1/models", json=_entry("admin-model", config),
                              headers=await _headers(runtime, KeyScope.admin))
    assert admin.status_code == 201, admin.text


@pytest.mark.parametrize(
    ("base_url", "problem"),
    [
        ("ftp://api.example.com/v1", "scheme"),
        ("https://user:pw@api.example.com/v1", "credentials"),
        ("https://api.example.com/v1?key=1", "query"),
        ("https://127.0.0.2/v1", "loopback"),
        ("https://2130706433/v1", "loopback"),
        ("https://0177.0.0.1/v1", "loopback"),
        ("https://[::1]/v1", "loopback"),
        ("https://[::ffff:127.0.0.1]/v1", "loopback"),
        ("https://169.254.169.254/v1", "metadata"),
        ("https://0.0.0.0/v1", "unspecified"),
    ],
)
async def test_a_submitted_url_must_be_a_public_https_endpoint(client, runtime, base_url, problem) -> None:
    response = await client.post("/api/v1/models", json=_entry("sub-model", {**HTTPS, "base_url": base_url}),
                                 headers=await _headers(runtime, KeyScope.submitter))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "config.base_url" and problem in error["message"]


async def test_plain_http_needs_the_maintainer_setting(client, runtime) -> None:
    runtime.settings.allow_http_endpoints = False
    config = {**HTTPS, "base_url": "http://api.example.com/v1"}
    response = await client.post("/api/v1/models", json=_entry("sub-model", config),
                                 headers=await _headers(runtime, KeyScope.submitter))
    assert response.status_code == 422 and "https" in response.json()["error"]["message"]


async def test_the_key_value_is_stored_encrypted_and_never_shown(client, runtime, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    submitter = await _headers(runtime, KeyScope.submitter)
    config = {**HTTPS, "api_key": OWN_KEY}
    submitted = await client.post("/api/v1/models", json=_entry("keyed-model", config), headers=submitter)
    assert submitted.status_code == 201, submitted.text
    shown = [submitted.text, (await client.get("/api/v1/models")).text,
             (await client.get("/api/v1/models/keyed-model")).text,
             (await client.get("/api/v1/models/keyed-model/evaluation", headers=submitter)).text]
    assert not [body for body in shown if OWN_KEY in body or "api_key" in body]
    async with runtime.sessions() as session:
        row = (await session.execute(text("SELECT config::text, api_key_encrypted FROM models "
                                          "WHERE slug = 'keyed-model'"))).one()
        model = await registry.get_by_slug(session, "keyed-model")
    assert OWN_KEY not in row[0] and "api_key\"" not in row[0] and '"egress": "public"' in row[0]
    assert row[1] and OWN_KEY not in row[1]
    assert secrets.decrypt(runtime.settings, row[1]) == OWN_KEY
    assert secrets.backend_config(model, runtime.settings)["api_key"] == OWN_KEY
    assert OWN_KEY not in caplog.text


async def test_a_submitted_model_on_loopback_is_refused_and_only_its_owner_reads_why(client, runtime) -> None:
    with stub_endpoint() as stub:
        port = stub.base_url.rsplit(":", 1)[1]
        config = stub.config(base_url=f"http://localhost:{port}/v1", api_key=OWN_KEY)
        owner = await _headers(runtime, KeyScope.submitter)
        assert (await client.post("/api/v1/models", json=_entry("inward-model", config), headers=owner)).status_code == 201
        await _work(runtime)
    assert stub.headers == []  # nothing reached the loopback endpoint
    url = "/api/v1/models/inward-model/evaluation"
    mine = (await client.get(url, headers=owner)).json()
    assert mine["status"] == "failed"
    assert "refused by the egress policy" in mine["latest_run"]["error"] and "loopback" in mine["latest_run"]["error"]
    admin = (await client.get(url, headers=await _headers(runtime, KeyScope.admin))).json()
    assert admin["latest_run"]["error"] == mine["latest_run"]["error"]
    for headers in ({}, await _headers(runtime, KeyScope.submitter)):  # a visitor, another submitter
        public = (await client.get(url, headers=headers)).json()
        assert public["latest_run"]["error"] == "failed: endpoint error"
        assert public["latest_run"]["error_category"] == "request_rejected"
    assert (await client.get(url, headers={"Authorization": "Bearer libra_bad_key"})).status_code == 401


@pytest.mark.parametrize("settings", ["allow"], indirect=True)
async def test_an_allowed_endpoint_gets_its_own_key_and_no_server_secret(client, runtime) -> None:
    with stub_endpoint() as keyed, stub_endpoint() as keyless:
        owner = await _headers(runtime, KeyScope.submitter)
        for slug, stub, extra in (("keyed-model", keyed, {"api_key": OWN_KEY}), ("keyless-model", keyless, {})):
            response = await client.post("/api/v1/models", json=_entry(slug, stub.config(**extra)), headers=owner)
            assert response.status_code == 201, response.text
        await _work(runtime)
    assert keyed.headers and keyless.headers
    assert {h.get("authorization") for h in keyed.headers} == {f"Bearer {OWN_KEY}"}
    assert all("authorization" not in h for h in keyless.headers)
    secret_values = {v for v in os.environ.values() if len(v) >= 12} | {SERVER_SECRET}
    secret_values.add(runtime.settings.secret_key.get_secret_value())
    received = " ".join(v for h in keyed.headers + keyless.headers for v in h.values())
    assert not [v for v in secret_values if v in received]
    done = (await client.get("/api/v1/models/keyed-model/evaluation")).json()
    assert done["status"] == "finished", done


def test_a_key_file_is_generated_once_with_owner_only_permissions(tmp_path) -> None:
    settings = Settings(_env_file=None, home=tmp_path / "home")
    with pytest.raises(LibraError, match="no secret key"):
        secrets.decrypt(settings, "gAAAA")
    token = secrets.encrypt(settings, OWN_KEY)
    path = tmp_path / "home" / secrets.KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    first = path.read_text()
    assert secrets.decrypt(settings, secrets.encrypt(settings, "again")) == "again"
    assert path.read_text() == first and secrets.decrypt(settings, token) == OWN_KEY
    other = Settings(_env_file=None, home=tmp_path, secret_key=Fernet.generate_key().decode())
    with pytest.raises(LibraError, match="does not match"):
        secrets.decrypt(other, token)
