"""The embedded Postgres outlives no holder: a holder killed with SIGKILL leaves through its watchdog.

`libra worker` runs as a real subprocess on its own embedded server (LIBRA_HOME in a fresh folder,
LIBRA_DATABASE_URL empty), and is killed the way the OOM killer or `kill -9` would.
"""

import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from core.pg_reaper import stop_server
from tests.conftest import scratch_root
from tests.server.livesite import LIBRA, stop
from tests.server.test_serve import _postgres_processes

GONE_WITHIN_S = 15
pytestmark = pytest.mark.filterwarnings("ignore:XDG_RUNTIME_DIR")  # said by platformdirs on import


@pytest.fixture
def home() -> Iterator[Path]:
    folder = scratch_root() / f"libra-pgkill-{uuid.uuid4().hex[:8]}"
    yield folder
    stop_server(folder / "pg")  # a failed test must not leave its server running


def _worker(home: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "LIBRA_HOME": str(home), "LIBRA_DATABASE_URL": "", "LIBRA_SEED_DEFAULTS": "false"}
    with log.open("a") as out:
        return subprocess.Popen([LIBRA, "worker"], env=env, stdout=out, stderr=subprocess.STDOUT)


def _holders(home: Path) -> list[int]:
    try:
        return json.loads((home / "pg" / ".handle_pids.json").read_text() or "[]")
    except (OSError, ValueError):
        return []


def _wait_for(condition: Callable[[], bool], timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}; log:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


def _serving(worker: subprocess.Popen, log: Path) -> None:
    _wait_for(lambda: "worker serving" in log.read_text() or worker.poll() is not None, 90, "the worker", log)
    assert worker.poll() is None, log.read_text()


def _kill(worker: subprocess.Popen) -> None:
    worker.kill()
    worker.wait()  # reaped at once, as a shell or a supervisor would


def test_a_holder_killed_with_sigkill_leaves_no_postgres_behind(home: Path, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    worker = _worker(home, log)
    try:
        _serving(worker, log)
        assert _postgres_processes(home / "pg") and _holders(home) == [worker.pid]
    finally:
        _kill(worker)
    _wait_for(lambda: not _postgres_processes(home / "pg"), GONE_WITHIN_S, "the server to stop", log)
    assert _holders(home) == []
    assert "db.embedded.holder_killed" in (home / "pg-watchdog.log").read_text()


def test_killing_one_of_two_holders_leaves_the_server_up_for_the_other(home: Path, tmp_path: Path) -> None:
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    first = _worker(home, first_log)
    try:
        _serving(first, first_log)
        second = _worker(home, second_log)
        try:
            _serving(second, second_log)
            _kill(first)
            _wait_for(lambda: first.pid not in _holders(home), GONE_WITHIN_S, "the killed pid to go", first_log)
            assert _holders(home) == [second.pid]
            with psycopg.connect(host=str(home / "pg"), user="postgres", dbname="postgres") as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
        finally:
            code = stop(second)
    finally:
        _kill(first)
    assert code == 0, second_log.read_text()
    assert "db.embedded.started" in first_log.read_text()
    assert "db.embedded.attached" in second_log.read_text()
    assert "db.embedded.started" not in second_log.read_text()
    assert not _postgres_processes(home / "pg")  # the last holder left normally and stopped it
