"""Ctrl-C and SIGTERM stop a busy `libra serve` within the deadline, and the next start finishes the run.

`libra serve` runs as a real process on its own embedded Postgres. The model's text comes from the
canned OpenAI-compatible server (tests/evaluation/canned.py), slowed down so that the signal lands
mid-evaluation; the test is about stopping, not about what a model says. One marked test does the
same with the real embedded llama.cpp model, whose decoding runs in a thread.
"""

import contextlib
import json
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psycopg
import pytest

from core.db import libpq_url
from core.pgserver import embedded_postgres
from tests.conftest import scratch_root
from tests.evaluation.canned import canned_server
from tests.server.livesite import LIBRA, free_port, wait_ready

STOP_TIMEOUT_S = 10
ENV = {"LIBRA_DATABASE_URL": "", "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false",
       "LIBRA_EVAL_SUITE": "smoke", "LIBRA_EVAL_ITEMS_PER_TASK": "6", "LIBRA_EVAL_HELD_OUT_PER_TASK": "1",
       "LIBRA_EVAL_MAX_TOKENS": "16", "LIBRA_EVAL_CRON": "0 0 1 1 *", "LIBRA_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S),
       "LIBRA_EVAL_RECOVER_CRON": "* * * * * */2"}


def _home() -> Path:
    return Path(tempfile.mkdtemp(prefix="libra-stop-", dir=scratch_root()))


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([LIBRA, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _postgres_processes(folder: Path) -> list[str]:
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return [line for line in ps.splitlines() if "postgres" in line and str(folder) in line]


def _start(env: dict[str, str]) -> tuple[str, subprocess.Popen]:
    port = free_port()
    process = subprocess.Popen([LIBRA, "serve", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    wait_ready(base_url, process)
    return base_url, process


def _evaluation(base_url: str, slug: str) -> dict:
    return httpx.get(f"{base_url}/api/v1/models/{slug}/evaluation", timeout=10).json()


def _wait(condition, timeout: float, what) -> None:  # noqa: ANN001
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what() if callable(what) else what}")
        time.sleep(0.3)


def _generated(base_url: str, slug: str) -> int:
    run = _evaluation(base_url, slug).get("latest_run") or {}
    return ((run.get("progress") or {}).get("generated")) or 0


def _stop_and_time(process: subprocess.Popen, sig: int) -> tuple[float, str]:
    started = time.monotonic()
    process.send_signal(sig)
    try:
        process.wait(STOP_TIMEOUT_S * 3)
    finally:
        if process.poll() is None:
            process.kill()
    return time.monotonic() - started, process.stderr.read()


def _items_and_rows(home: Path) -> tuple[int, int, int]:
    """Items planned by the model's runs, and the generation and score rows behind them."""
    with embedded_postgres(home) as url, psycopg.connect(libpq_url(url)) as conn:
        return conn.execute(
            "SELECT count(*), count(DISTINCT g.fingerprint), count(DISTINCT s.fingerprint) "
            "FROM eval_run_items i JOIN eval_runs r ON r.id = i.run_id "
            "LEFT JOIN eval_generations g ON g.fingerprint = i.generation_fingerprint "
            "LEFT JOIN eval_scores s ON s.fingerprint = i.score_fingerprint WHERE r.status = 'finished'"
        ).fetchone()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_mid_evaluation_exits_in_time_and_the_next_start_finishes_the_run(sig: int) -> None:
    home = _home()
    env = {**os.environ, **ENV, "LIBRA_HOME": str(home)}
    with canned_server(delay_s=0.25) as canned:
        _cli(env, "models", "add", "canned", "--config", json.dumps(canned.config()))
        admin = _cli(env, "keys", "create", "--scope", "admin", "--name", "test").splitlines()[0]
        base_url, process = _start(env)
        try:
            queued = httpx.post(f"{base_url}/api/v1/admin/models/canned/evaluate", timeout=10,
                                headers={"Authorization": f"Bearer {admin}"})
            assert queued.status_code == 202, queued.text
            _wait(lambda: _generated(base_url, "canned") >= 2, 60, "the first saved items")
        finally:
            took, stderr = _stop_and_time(process, sig)
        assert took < STOP_TIMEOUT_S + 3, stderr
        assert process.returncode == 0, stderr
        assert "stopping: evaluation of canned saved at" in stderr and "resumes at next start" in stderr
        assert not _postgres_processes(home / "pg")

        base_url, process = _start(env)  # no admin action: the next start resumes the run by itself
        try:
            _wait(lambda: _evaluation(base_url, "canned")["status"] == "finished", 120,
                  lambda: f"the resumed run: {_evaluation(base_url, 'canned')}")
        finally:
            _stop_and_time(process, signal.SIGINT)
    planned, generations, scores = _items_and_rows(home)
    assert planned > 0 and planned == generations == scores  # one row per item, none lost, none doubled
    assert not _postgres_processes(home / "pg")


def test_a_second_ctrl_c_stops_at_once_and_still_stops_postgres() -> None:
    home = _home()
    env = {**os.environ, **ENV, "LIBRA_HOME": str(home), "LIBRA_STOP_TIMEOUT_S": "60"}
    with canned_server(delay_s=30) as canned:  # a battle in flight keeps the clean stop waiting
        for name in ("slow-a", "slow-b"):
            _cli(env, "models", "add", name, "--config", json.dumps(canned.config(model=name)))
        base_url, process = _start(env)
        battle = threading.Thread(target=_battle, args=(base_url,), daemon=True)
        battle.start()
        _wait(lambda: canned.requests >= 2, 30, "both models to be asked")
        process.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert process.poll() is None  # still waiting for the battle's request, as a clean stop should
        took, stderr = _stop_and_time(process, signal.SIGINT)
    assert took < 8, stderr
    assert "stopping now (second Ctrl-C)" in stderr
    _wait(lambda: not _postgres_processes(home / "pg"), 10, "the embedded Postgres to stop")


def _battle(base_url: str) -> None:
    with contextlib.suppress(httpx.HTTPError):
        httpx.post(f"{base_url}/api/v1/battles", json={"prompt": "Say hello."}, timeout=120)


@pytest.mark.model
def test_ctrl_c_during_a_real_llama_cpp_batch_exits_in_time() -> None:
    """The embedded model decodes in a thread that Python cannot kill: the stop must reach the decoder."""
    home = _home()
    env = {**os.environ, **ENV, "LIBRA_HOME": str(home), "LIBRA_SEED_DEFAULTS": "true",
           "LIBRA_EVAL_MAX_TOKENS": "256", "LIBRA_EVAL_ITEMS_PER_TASK": "4"}
    admin = _cli(env, "keys", "create", "--scope", "admin", "--name", "test").splitlines()[0]
    base_url, process = _start(env)
    try:
        queued = httpx.post(f"{base_url}/api/v1/admin/models/smollm2-135m/evaluate", timeout=10,
                            headers={"Authorization": f"Bearer {admin}"})
        assert queued.status_code == 202, queued.text
        _wait(lambda: _evaluation(base_url, "smollm2-135m")["status"] == "running", 60, "the run to start")
        time.sleep(3)  # inside the first batch: 16 answers of up to 256 tokens take far longer than this
    finally:
        took, stderr = _stop_and_time(process, signal.SIGINT)
    assert took < STOP_TIMEOUT_S + 3, stderr
    assert process.returncode == 0, stderr
    assert not _postgres_processes(home / "pg")
