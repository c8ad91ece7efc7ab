"""The `libra` command line as a user runs it: real subprocesses, real databases."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import scratch_root

LIBRA = str(Path(sys.executable).with_name("libra"))


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([LIBRA, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


@pytest.mark.parametrize("args", [[], ["serve"], ["worker"], ["db"], ["db", "upgrade"], ["db", "current"],
                                  ["keys", "create"], ["keys", "list"], ["keys", "revoke"],
                                  ["models", "list"], ["models", "add"], ["models", "approve"],
                                  ["serve-model"], ["backup"], ["restore"], ["data"],
                                  ["data", "install"], ["data", "status"],
                                  ["arena"], ["arena", "weights"], ["arena", "set-weight"], ["arena", "paused"],
                                  ["arena", "resume"], ["arena", "refresh-scores"], ["export"], ["export", "votes"],
                                  ["export", "pair-scores"], ["replay"], ["replay-draws"]])
def test_every_command_has_help(args: list[str]) -> None:
    result = run(*args, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_keys_and_models_commands(db_url: str) -> None:
    env = {"LIBRA_DATABASE_URL": db_url}
    key = run("keys", "create", "--scope", "admin", "--name", "ops", env=env)
    assert key.returncode == 0, key.stderr
    assert key.stdout.strip().startswith("libra_")
    config = '{"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}'
    added = run("models", "add", "ext-model", "--config", config, "--organisation", "Lab", env=env)
    assert added.returncode == 0, added.stderr
    listed = run("models", "list", env=env)
    assert "ext-model" in listed.stdout and "active" in listed.stdout
    assert run("db", "current", env=env).stdout.strip()


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["models", "add", "x-model", "--config", "{oops"], {}, "not valid JSON"),
        (["models", "add", "x-model", "--config", '{"kind": "nope"}'], {}, "config"),
        (["keys", "create", "--scope", "root"], {}, "root"),
    ],
)
def test_bad_input_gives_one_clear_line(db_url: str, args: list[str], env: dict, expected: str) -> None:
    result = run(*args, env={"LIBRA_DATABASE_URL": db_url, **env})
    assert result.returncode != 0
    assert expected in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LIBRA_DATABASE_URL": "mysql://nope"}, "postgresql://"),
        ({"LIBRA_DATABASE_URL": "::::"}, "not a valid URL"),
        ({"LIBRA_DATABASE_URL": "postgresql://u:p@127.0.0.1:1/x"}, "cannot reach the database"),
        ({"LIBRA_PORT": "99999"}, "LIBRA_PORT"),
    ],
)
def test_bad_settings_fail_fast_without_traceback(env: dict[str, str], expected: str) -> None:
    result = run("db", "current", env=env)
    assert result.returncode != 0
    assert expected in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_a_port_in_use(db_url: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run("serve", "--port", str(port), env={"LIBRA_DATABASE_URL": db_url})
    assert result.returncode != 0 and f"{port}" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_data_folder_is_one_line(tmp_path: Path) -> None:
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("")
    result = run("db", "current", env={"LIBRA_HOME": str(blocked / "home"), "LIBRA_DATABASE_URL": ""})
    assert result.returncode != 0 and "not writable" in result.stderr and "Traceback" not in result.stderr


def _postgres_running_in(folder: Path) -> bool:
    ps = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    return any("postgres" in line and str(folder) in line for line in ps.splitlines())


def test_embedded_postgres_starts_and_stops_with_the_command() -> None:
    home = scratch_root() / f"libra-cli-{os.getpid()}"  # outside /root: see ARCHITECTURE.md
    env = {"LIBRA_HOME": str(home), "LIBRA_DATABASE_URL": ""}
    result = run("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert "database at revision" in result.stdout
    assert not _postgres_running_in(home / "pg")
    assert run("db", "current", env=env).stdout.strip() != "empty (no migrations applied)"
