"""Runs `libra serve` (or `libra worker`) as a real subprocess for tests that need the whole service."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

LIBRA = str(Path(sys.executable).with_name("libra"))


async def register_endpoint_models(runtime, base_url: str, slugs: Sequence[str]) -> None:  # noqa: ANN001
    """Active contestants answered by the OpenAI-compatible endpoint at `base_url` (a test's loopback stub)."""
    from core.db import transaction
    from core.registry.models import ContestantStatus
    from core.registry.schemas import ContestantIn
    from server.contestants import register

    async with transaction(runtime.sessions) as session:
        for slug in slugs:
            config = {"kind": "openai", "base_url": base_url, "model": slug, "max_retries": 0}
            await register(session, ContestantIn(slug=slug, display_name=slug, organisation="t", config=config),
                           ContestantStatus.active, actor="test")


def endpoint_site_env(db_url: str, home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `libra serve` whose only models are those of `register_endpoint_models`."""
    return {"LIBRA_DATABASE_URL": db_url, "LIBRA_HOME": str(home), "LIBRA_EGRESS_ALLOW": "127.0.0.1/32",
            "LIBRA_SEED_DEFAULTS": "false", "LIBRA_FIRST_RUN_EVALUATIONS": "false", **extra}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_ready(base_url: str, process: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"libra exited early:\n{process.stderr.read() if process.stderr else ''}")
        try:
            if httpx.get(f"{base_url}/api/v1/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{base_url} was not ready in {timeout} s")


def stop(process: subprocess.Popen, timeout: float = 30) -> int:
    """Ctrl-C, as a person at the terminal would; returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


@contextmanager
def serving(env: dict[str, str], *extra: str) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    process = subprocess.Popen([LIBRA, "serve", "--port", str(port), *extra], env={**os.environ, **env},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, process)
        yield base_url, process
    finally:
        stop(process)
