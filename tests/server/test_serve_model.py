"""`libra serve-model` as a real process, called through the real HTTP backend over loopback."""

import os
import subprocess
import time

import httpx
import pytest

from inference import BackendPool, Message, SamplingParams
from tests.server.livesite import LIBRA, free_port, stop

pytestmark = pytest.mark.model


def _wait_for_models(base_url: str, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        try:
            if httpx.get(f"{base_url}/v1/models", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.3)
    raise TimeoutError(base_url)


async def test_a_registered_model_served_over_openai_http(db_url: str) -> None:
    env = {**os.environ, "LIBRA_DATABASE_URL": db_url}
    config = '{"kind": "llamacpp", "model": "smollm2-135m-instruct"}'
    added = subprocess.run([LIBRA, "models", "add", "smol", "--config", config], env=env, capture_output=True,
                           text=True)
    assert added.returncode == 0, added.stderr
    port = free_port()
    process = subprocess.Popen([LIBRA, "serve-model", "smol", "--port", str(port)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pool = BackendPool()
    try:
        _wait_for_models(f"http://127.0.0.1:{port}", process)
        backend = pool.get({"kind": "openai", "base_url": f"http://127.0.0.1:{port}/v1", "model": "smol"})
        params = SamplingParams(max_tokens=8, temperature=0.0)
        result = await backend.generate([Message("user", "Say hello.")], params)
        assert result.text.strip() and result.completion_tokens > 0
        async with backend.stream([Message("user", "Count to three.")], params) as stream:
            chunks = [chunk async for chunk in stream]
        assert chunks and stream.result.complete
    finally:
        await pool.aclose()
        assert stop(process) == 0, process.stderr.read()


def test_serve_model_rejects_an_unknown_model(db_url: str) -> None:
    result = subprocess.run([LIBRA, "serve-model", "nobody", "--port", str(free_port())],
                            env={**os.environ, "LIBRA_DATABASE_URL": db_url}, capture_output=True, text=True)
    assert result.returncode != 0 and "nobody" in result.stderr and "Traceback" not in result.stderr
