"""`libra serve --workers 2` as a real process tree on its own embedded Postgres.

One start serves every check, since a start costs seconds: two API processes and one job worker run as
children, a new leaderboard snapshot is served by each API process once its one-second check has passed, an
API process killed with SIGKILL is replaced, and Ctrl-C leaves no process, no Postgres and no metrics folder.

Which API process answers a connection is the kernel's choice; the test opens connections until each process
has answered one, and tells which did by the server side of the connection (psutil lists its sockets).
"""

import http.client
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import psutil
import psycopg
import pytest
from typer.testing import CliRunner
from uvicorn.config import STARTUP_FAILURE

from core.db import libpq_url
from server.cli import app
from server.cli.processes import Child, ChildFailed, Supervisor
from server.leaderboard.cache import CHECK_INTERVAL_S
from tests.conftest import scratch_root
from tests.server.livesite import serving

ENV = {"LIBRA_DATABASE_URL": "", "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false",
       "LIBRA_STOP_TIMEOUT_S": "10", "LIBRA_LEADERBOARD_CRON": "0 0 1 1 *"}
HANG_GUARD_S = 90


def _children(parent: psutil.Process, name: str) -> list[psutil.Process]:
    found = []
    for child in parent.children():
        try:
            if child.name() == name and child.status() != psutil.STATUS_ZOMBIE:
                found.append(child)
        except psutil.NoSuchProcess:
            pass
    return found


def _wait_for(condition: Callable[[], object], what: str) -> None:
    deadline = time.monotonic() + HANG_GUARD_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _listening(api: psutil.Process, port: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in api.net_connections("tcp"))
    except psutil.NoSuchProcess:
        return False


def _owner(apis: list[psutil.Process], client_port: int) -> int | None:
    """The API process that holds the server side of the client's connection."""
    for api in apis:
        if any(c.raddr and c.raddr.port == client_port for c in api.net_connections("tcp")):
            return api.pid
    return None


def _versions_by_process(apis: list[psutil.Process], port: int) -> dict[int, int | None]:
    """The leaderboard version each API process serves: new connections until each has answered one."""
    versions: dict[int, int | None] = {}
    deadline = time.monotonic() + HANG_GUARD_S
    while len(versions) < len(apis):
        assert time.monotonic() < deadline, f"only {sorted(versions)} of {[a.pid for a in apis]} answered"
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD_S)
        try:
            connection.request("GET", "/api/v1/leaderboard")
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200, body
            owner = _owner(apis, connection.sock.getsockname()[1])  # still open: the server side is listed
        finally:
            connection.close()
        if owner is not None:
            versions.setdefault(owner, json.loads(body)["version"])
    return versions


def _owners_of_connections_opened_together(apis: list[psutil.Process], port: int, count: int) -> list[int | None]:
    """``count`` keep-alive connections opened at once (as a load balancer or a browser does): who holds each."""
    connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=HANG_GUARD_S) for _ in range(count)]
    try:
        for connection in connections:
            connection.connect()
        for connection in connections:
            connection.request("GET", "/api/v1/healthz")
        for connection in connections:
            connection.getresponse().read()
        return [_owner(apis, connection.sock.getsockname()[1]) for connection in connections]
    finally:
        for connection in connections:
            connection.close()


def _publish_snapshot(database_url: str) -> int:
    """A snapshot written by another process (as the job worker or a worker on another host would)."""
    with psycopg.connect(libpq_url(database_url)) as conn:
        return conn.execute(
            "INSERT INTO leaderboard_snapshots (created_at, trigger, config, payload, etag) "
            "VALUES (now(), 'manual', '{}', '{\"models\": []}', %s) RETURNING id", (uuid.uuid4().hex,),
        ).fetchone()[0]


def _postgres_processes(folder: Path) -> list[str]:
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=False).stdout
    return [line for line in ps.splitlines() if "postgres" in line and str(folder) in line]


def test_two_api_processes_share_snapshots_survive_a_kill_and_stop_with_nothing_left() -> None:
    home = scratch_root() / f"libra-workers-{uuid.uuid4().hex[:8]}"
    with serving({**ENV, "LIBRA_HOME": str(home)}, "--workers", "2") as (base_url, process):
        parent, port = psutil.Process(process.pid), int(base_url.rsplit(":", 1)[1])
        # Ready is when one process answers; the other may still be loading its app.
        _wait_for(lambda: [_listening(p, port) for p in _children(parent, "libra-api")] == [True, True],
                  "two API processes listening")
        apis = _children(parent, "libra-api")
        # Named when its own code starts, after the spawn's imports: it may still be loading (a CI run saw 0).
        _wait_for(lambda: len(_children(parent, "libra-worker")) == 1, "the job worker process named")
        environ = apis[0].environ()
        metrics = Path(environ["PROMETHEUS_MULTIPROC_DIR"])
        assert metrics.is_dir()

        # Each process gets a share of connections opened together (with one shared socket, one took all 16).
        assert set(_owners_of_connections_opened_together(apis, port, 16)) == {p.pid for p in apis}

        before = _versions_by_process(apis, port)  # each process has cached the version it served
        published = _publish_snapshot(environ["LIBRA_DATABASE_URL"])
        assert all(version != published for version in before.values())
        time.sleep(CHECK_INTERVAL_S + 0.5)  # past the check interval: the next request of each looks again
        assert _versions_by_process(apis, port) == dict.fromkeys(before, published)

        killed = apis[0]
        killed.send_signal(signal.SIGKILL)
        _wait_for(lambda: {p.pid for p in _children(parent, "libra-api")} - {apis[1].pid} - {killed.pid},
                  "a new API process in place of the killed one")
        apis = _children(parent, "libra-api")
        assert len(apis) == 2 and killed.pid not in {p.pid for p in apis}
        assert _versions_by_process(apis, port) == {p.pid: published for p in apis}  # the new one reads it at once

        descendants = parent.children(recursive=True)
    assert process.returncode == 0, process.stderr.read()
    assert "http://127.0.0.1:" in process.stdout.read()
    _, alive = psutil.wait_procs(descendants, timeout=HANG_GUARD_S)
    assert [p for p in alive if p.status() != psutil.STATUS_ZOMBIE] == []
    assert not _postgres_processes(home / "pg")
    assert not metrics.exists()


def _stop_after(loops: int) -> Callable[[float], bool]:
    """A stop signal for ``Supervisor.watch`` that comes after ``loops`` watch intervals."""
    seen = []

    def stop(timeout: float) -> bool:
        time.sleep(timeout)
        seen.append(timeout)
        return len(seen) > loops

    return stop


def test_a_child_that_cannot_start_stops_the_supervisor_instead_of_restarting() -> None:
    supervisor = Supervisor([Child("libra-api", os._exit, (STARTUP_FAILURE,))])
    with pytest.raises(ChildFailed, match="libra-api process could not start"):
        supervisor.watch(_stop_after(40))
    assert supervisor.children[0].generation == 1


def test_a_child_that_keeps_dying_is_restarted_after_growing_pauses() -> None:
    child = Child("libra-worker", os._exit, (1,))
    supervisor = Supervisor([child])
    supervisor.watch(_stop_after(8))  # 4 s: 2 or 3 starts with pauses of 1 s, 2 s...; about 8 without them
    supervisor.stop(5)
    assert 2 <= child.generation <= 4 and child.quick_deaths >= 1
    assert child.process is None or child.process.exitcode is not None


@pytest.mark.parametrize(("args", "env", "says"), [
    (["--workers", "0"], {}, "Invalid value for '--workers'"),
    (["--workers", "two"], {}, "Invalid value for '--workers'"),
    ([], {"LIBRA_WEB_WORKERS": "0"}, "LIBRA_WEB_WORKERS"),
])
def test_a_bad_process_count_is_refused_in_one_clear_line(args: list[str], env: dict[str, str], says: str) -> None:
    # In this process (the command's import alone takes seconds): refused before anything starts.
    done = CliRunner().invoke(app, ["serve", *args], env=env)
    assert done.exit_code != 0
    assert says in done.output and "Traceback" not in done.output
    assert isinstance(done.exception, SystemExit)  # a clean exit with its code, not an error raised
