"""Review before the arena (docs/security.md): a submitted model goes pending -> evaluating -> evaluated
and enters the arena only when an admin approves it; its owner follows, updates or withdraws it; a
dead endpoint fails its run at once. Real database, real worker, real HTTP endpoints on loopback."""

import asyncio
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from core.audit.models import AuditEvent
from core.db import transaction
from core.errors import LibraError
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry import repository as registry
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from core.settings import Settings
from evaluation.runs.endpoint_check import check_endpoint
from inference import parse_backend_config
from server.contestants import register
from tests.evaluation.canned import canned_server
from tests.http_stub import JsonHandler, serving


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Settings:
    """Overrides tests/conftest.py: submitters may reach the loopback test endpoints."""
    monkeypatch.setenv("LIBRA_EGRESS_ALLOW", "127.0.0.1/32")  # read by the runtime's backend pool
    return Settings(_env_file=None, database_url=None, home=tmp_path, secret_key=Fernet.generate_key().decode(),
                    allow_http_endpoints=True, egress_allow="127.0.0.1/32", eval_suite="smoke",
                    eval_items_per_task=2, eval_held_out_per_task=0, eval_max_tokens=8)


@pytest.fixture
def canned():
    with canned_server() as server:
        yield server


async def _headers(runtime, scope: KeyScope) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "tester", scope, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def _submit(client, runtime, slug: str, config: dict, headers: dict | None = None) -> dict[str, str]:
    headers = headers or await _headers(runtime, KeyScope.submitter)
    body = {"slug": slug, "display_name": slug, "organisation": "Lab", "config": config}
    response = await client.post("/api/v1/models", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return headers


async def _work(runtime) -> None:
    await runtime.jobs.run_worker_async(wait=False, install_signal_handlers=False,
                                        additional_context=runtime.job_context, queues=["cpu"])


async def _status(client, slug: str) -> str:
    return (await client.get(f"/api/v1/models/{slug}")).json()["status"]


async def _actions(runtime, action: str) -> list[AuditEvent]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


async def test_a_submission_waits_for_approval_before_the_arena(client, runtime, canned) -> None:
    async with transaction(runtime.sessions) as session:  # one model of the server's own, active
        entry = ContestantIn(slug="house-model", display_name="house", organisation="t", config=canned.config())
        await register(session, entry, ContestantStatus.active, actor="test")
    await _submit(client, runtime, "sub-model", canned.config())
    assert await _status(client, "sub-model") == "pending"
    await _work(runtime)
    assert await _status(client, "sub-model") == "evaluated"
    assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).json()["error"]["code"] == "no_pair"

    submitter = await _headers(runtime, KeyScope.submitter)
    url = "/api/v1/admin/models/sub-model/approve"
    assert (await client.post(url, headers=submitter)).status_code == 403
    admin = await _headers(runtime, KeyScope.admin)
    approved = await client.post(url, headers=admin)
    assert approved.status_code == 200 and approved.json()["status"] == "active"
    assert len(await _actions(runtime, "model.approved")) == 1
    again = await client.post(url, headers=admin)
    assert again.status_code == 409
    battle = (await client.post("/api/v1/battles", json={"prompt": "hi"})).json()
    assert battle["status"] != "failed", battle


async def test_the_first_claim_makes_the_model_evaluating(client, runtime, canned) -> None:
    canned.delay_s = 0.05
    await _submit(client, runtime, "slow-model", canned.config(max_concurrency=1))
    worker = asyncio.create_task(_work(runtime))
    try:
        for _ in range(200):
            if await _status(client, "slow-model") == "evaluating":
                break
            await asyncio.sleep(0.05)
        assert await _status(client, "slow-model") == "evaluating"
    finally:
        await worker
    assert await _status(client, "slow-model") == "evaluated"


async def test_auto_approve_lets_the_first_evaluation_approve(client, runtime, canned) -> None:
    runtime.settings.auto_approve = True
    await _submit(client, runtime, "auto-model", canned.config())
    await _work(runtime)
    assert await _status(client, "auto-model") == "active"


async def test_an_admin_registered_model_needs_no_approval(client, runtime, canned) -> None:
    await _submit(client, runtime, "admin-model", canned.config(), await _headers(runtime, KeyScope.admin))
    await _work(runtime)
    assert await _status(client, "admin-model") == "active"


async def test_only_an_evaluated_model_can_be_approved(client, runtime, canned) -> None:
    await _submit(client, runtime, "early-model", canned.config())
    response = await client.post("/api/v1/admin/models/early-model/approve",
                                 headers=await _headers(runtime, KeyScope.admin))
    assert response.status_code == 409 and "evaluated" in response.json()["error"]["message"]


async def test_the_owner_lists_withdraws_and_updates_its_models(client, runtime, canned) -> None:
    owner = await _submit(client, runtime, "own-model", canned.config())
    other = await _headers(runtime, KeyScope.submitter)
    await _work(runtime)
    mine = (await client.get("/api/v1/me/models", headers=owner)).json()
    assert [m["model"]["slug"] for m in mine] == ["own-model"]
    assert mine[0]["model"]["status"] == "evaluated" and mine[0]["evaluation"]["status"] == "finished"
    assert (await client.get("/api/v1/me/models", headers=other)).json() == []
    assert (await client.get("/api/v1/me/models")).status_code == 401

    update = {"display_name": "Own model v2", "config": canned.config(model="v2")}
    assert (await client.put("/api/v1/models/own-model", json=update, headers=other)).status_code == 403
    updated = await client.put("/api/v1/models/own-model", json=update, headers=owner)
    assert updated.status_code == 200, updated.text
    assert updated.json()["status"] == "pending" and updated.json()["display_name"] == "Own model v2"
    shown = (await client.get("/api/v1/models/own-model/evaluation", headers=owner)).json()
    assert shown["status"] == "pending" and shown["latest_run"]["reason"] == "submission"
    assert shown["latest_run"]["id"] != mine[0]["evaluation"]["latest_run"]["id"]  # a new run is queued
    bad = await client.put("/api/v1/models/own-model", json={"config": {**canned.config(), "api_key_env": "X"}},
                           headers=owner)
    assert bad.status_code == 403  # the same validation as registration
    busy = await client.put("/api/v1/models/own-model", json={"config": canned.config(model="v3")}, headers=owner)
    assert busy.status_code == 409  # a run of the previous endpoint is queued: it must not vouch for this one
    await _work(runtime)
    assert await _status(client, "own-model") == "evaluated"

    assert (await client.post("/api/v1/models/own-model/withdraw", headers=other)).status_code == 403
    withdrawn = await client.post("/api/v1/models/own-model/withdraw", headers=owner)
    assert withdrawn.status_code == 200 and withdrawn.json()["status"] == "retired"
    assert len(await _actions(runtime, "model.withdrawn")) == 1
    assert (await client.post("/api/v1/models/own-model/withdraw", headers=owner)).status_code == 409


@contextmanager
def _refusing_server(status: int) -> Iterator[str]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.read_body()
            self.send_json(status, {"error": {"message": "invalid api key"}})

    with serving(Handler) as base_url:
        yield base_url


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _failed_run(client, runtime, slug: str, base_url: str) -> dict:
    owner = await _submit(client, runtime, slug, {"kind": "openai", "base_url": base_url, "model": "m",
                                                  "max_retries": 0, "api_key": "sk-wrong-key-123456"})
    await _work(runtime)
    assert await _status(client, slug) == "pending"  # a failed first run leaves it waiting, not evaluating
    shown = (await client.get(f"/api/v1/models/{slug}/evaluation", headers=owner)).json()
    assert shown["status"] == "failed"
    assert shown["latest_run"]["items"] == 0  # failed before planning its items
    return shown["latest_run"]


async def test_an_endpoint_that_refuses_the_key_fails_the_run_at_once(client, runtime) -> None:
    with _refusing_server(401) as base_url:
        run = await _failed_run(client, runtime, "keyless-model", base_url)
    assert run["error"].startswith("endpoint check failed, the endpoint refused the key"), run["error"]
    assert "HTTP 401" in run["error"]
    public = (await client.get("/api/v1/models/keyless-model/evaluation")).json()["latest_run"]
    assert public["error"] == "failed: endpoint error" and public["error_category"] == "request_rejected"


async def test_an_unreachable_endpoint_fails_the_run_at_once(client, runtime) -> None:
    run = await _failed_run(client, runtime, "closed-model", f"http://127.0.0.1:{_closed_port()}/v1")
    assert run["error"].startswith("endpoint check failed, unreachable"), run["error"]


async def test_a_slow_endpoint_fails_the_check(runtime, canned) -> None:
    canned.delay_s = 1.0
    async with transaction(runtime.sessions) as session:
        entry = ContestantIn(slug="slow-check", display_name="s", organisation="t",
                             config={**canned.config(), "egress": "public"})
        model = await register(session, entry, ContestantStatus.pending, actor="test")
    backend = runtime.backends.get(parse_backend_config(model.config))
    with pytest.raises(LibraError, match="endpoint check failed, too slow"):
        await check_endpoint(backend, timeout_s=0.2)
    async with runtime.sessions() as session:
        assert (await registry.get_by_slug(session, "slow-check")).status == ContestantStatus.pending


async def test_libra_models_approve(runtime, db_url) -> None:
    from tests.server.test_cli import run

    async with transaction(runtime.sessions) as session:
        for slug, status in (("cli-evaluated", ContestantStatus.evaluated), ("cli-pending", ContestantStatus.pending)):
            entry = ContestantIn(slug=slug, display_name=slug, organisation="t",
                                 config={"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"})
            await register(session, entry, status, actor="test")
    env = {"LIBRA_DATABASE_URL": db_url}
    approved = await asyncio.to_thread(run, "models", "approve", "cli-evaluated", env=env)
    assert approved.returncode == 0 and "approved cli-evaluated (active)" in approved.stdout, approved.stderr
    refused = await asyncio.to_thread(run, "models", "approve", "cli-pending", env=env)
    assert refused.returncode != 0 and "only an evaluated model" in refused.stderr
    async with runtime.sessions() as session:
        assert (await registry.get_by_slug(session, "cli-evaluated")).status == ContestantStatus.active
        assert (await registry.get_by_slug(session, "cli-pending")).status == ContestantStatus.pending
