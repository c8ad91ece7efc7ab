"""A submitted endpoint that answers, but slowly, cannot hold the worker: its run stops at its time budget
(LIBRA_EVAL_SUBMITTED_BUDGET_S), keeps the items it finished, and the next run resumes from them. Real
database, real worker, a real HTTP endpoint on loopback that takes its time over every answer."""

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from core.keys.models import KeyScope
from core.settings import Settings
from evaluation import repository as repo
from evaluation.models import EvalRun
from evaluation.status import error_category
from tests.evaluation.canned import canned_server
from tests.server.test_model_review import _headers, _status, _submit, _work

BUDGET_S = 1.5
ANSWER_S = 0.3


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Settings:
    """Overrides tests/conftest.py: submitters may reach the loopback endpoint, and runs get a short budget."""
    monkeypatch.setenv("LIBRA_EGRESS_ALLOW", "127.0.0.1/32")
    return Settings(_env_file=None, database_url=None, home=tmp_path, secret_key=Fernet.generate_key().decode(),
                    allow_http_endpoints=True, egress_allow="127.0.0.1/32", eval_suite="smoke",
                    eval_items_per_task=4, eval_held_out_per_task=0, eval_max_tokens=8,
                    eval_submitted_budget_s=BUDGET_S)


async def _runs(runtime) -> list[EvalRun]:
    async with runtime.sessions() as session:
        return list(await session.scalars(select(EvalRun).order_by(EvalRun.id)))


async def test_a_slow_submitted_endpoint_stops_at_its_budget_and_resumes_from_its_finished_items(
        client, runtime) -> None:
    with canned_server(delay_s=ANSWER_S) as slow:  # one call at a time: every item waits for the one before
        owner = await _submit(client, runtime, "slow-model", slow.config(max_concurrency=1, max_retries=0))
        await _work(runtime)
        [run] = await _runs(runtime)
        assert run.status.value == "failed" and run.error.startswith("stopped after its time budget (1.5 s"), run.error
        async with runtime.sessions() as session:
            progress = await repo.run_progress(session, run.id)
        assert 0 < progress.generated < progress.total  # stopped part-way, with what it finished stored
        assert await _status(client, "slow-model") == "pending"
        assert error_category(run.error) == "timeout"
        public = (await client.get("/api/v1/models/slow-model/evaluation")).json()["latest_run"]
        assert public["error"] == "failed: endpoint error" and public["error_category"] == "timeout"
        own = (await client.get("/api/v1/models/slow-model/evaluation", headers=owner)).json()["latest_run"]
        assert own["error"] == run.error  # its owner reads why

        slow.delay_s = 0.0  # the owner made it faster; a new run resumes from the stored items
        admin = await _headers(runtime, KeyScope.admin)
        rerun = await client.post("/api/v1/admin/models/slow-model/evaluate", json={}, headers=admin)
        assert rerun.status_code == 202, rerun.text
        await _work(runtime)
    runs = await _runs(runtime)
    assert runs[-1].status.value == "finished", runs[-1].error
    assert runs[-1].run_fingerprint == run.run_fingerprint
    # Two endpoint checks, every item once, and at most the one item cut off by the budget asked again.
    assert progress.total + 2 <= slow.requests <= progress.total + 3, (slow.requests, progress)
