"""The endpoints' HTTP clients (`inference.http_clients`), against real servers on loopback: one TLS context for
all of them, and an idle endpoint's sockets closed without ever closing a client under a call."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import psutil
import pytest

from inference import BackendPool, Message, SamplingParams
from inference.openai_server import build_app

QUESTION = [Message("user", "Say hello.")]


def _config(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": base_url, "model": "scripted", "max_retries": 0, **extra}


def _connections_to(url: str) -> int:
    """This process's open TCP connections to the server of ``url``."""
    port = httpx.URL(url).port
    return sum(1 for c in psutil.Process().net_connections("tcp")
               if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)


@pytest.mark.asyncio
async def test_every_endpoints_client_shares_one_tls_context(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[object] = []
    real = httpx.create_ssl_context
    monkeypatch.setattr(httpx, "create_ssl_context", lambda *a, **k: built.append(1) or real(*a, **k))
    pool = BackendPool(egress_allow="127.0.0.1/32")
    try:
        for n in range(3):  # three endpoints, each with a plain and a checked (submitted) client
            for egress in ("any", "public"):
                backend = pool.get(_config(f"https://endpoint-{n}.example/v1", egress=egress))
                async with backend._client.borrowed():  # opens the client, as a call does
                    pass
        assert pool.http_clients.open_count == 6
    finally:
        await pool.aclose()
    assert len(built) == 1  # each client built one (a checked one two) before: ~20 ms of CPU and 0.8 MB each


@pytest.mark.asyncio
async def test_an_idle_endpoints_sockets_are_closed_and_its_next_call_opens_them_again(
        scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(), "scripted")) as url:
        pool = BackendPool()
        clients = pool.http_clients
        try:
            backend = pool.get(_config(url))
            await asyncio.gather(*(backend.generate(QUESTION, SamplingParams()) for _ in range(4)))
            assert _connections_to(url) >= 1  # kept alive for the next call
            assert clients.close_idle() == 0  # used just now
            clients.idle_close_s = 0.0
            assert clients.close_idle() == 1
            await asyncio.sleep(0.1)  # the close runs in the background
            assert _connections_to(url) == 0 and clients.open_count == 0
            # The backend built before the close still works: its next call opens a new client.
            assert (await backend.generate(QUESTION, SamplingParams())).text == "Hello, world!"
            assert clients.open_count == 1
        finally:
            await pool.aclose()
        assert _connections_to(url) == 0


@pytest.mark.asyncio
async def test_a_client_is_never_closed_under_a_streaming_call(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(delay_s=0.05), "scripted")) as url:
        pool = BackendPool()
        clients = pool.http_clients
        clients.idle_close_s = 0.0
        try:
            chunks = []
            async with pool.get(_config(url)).stream(QUESTION, SamplingParams()) as stream:
                async for chunk in stream:
                    chunks.append(chunk)
                    assert clients.close_idle() == 0  # in flight: kept
            assert "".join(chunks) == "Hello, world!"
            assert clients.close_idle() == 1  # the call ended: now it goes
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_the_end_of_a_call_closes_other_endpoints_idle_clients_when_a_sweep_is_due(
        scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(), "scripted")) as first, serve(build_app(scripted(), "scripted")) as second:
        pool = BackendPool()
        clients = pool.http_clients
        try:
            await pool.get(_config(first)).generate(QUESTION, SamplingParams())
            clients.idle_close_s, clients.sweep_every_s = 0.2, 0.0
            await asyncio.sleep(0.3)
            # A call to the second endpoint ends; the first's client, idle for 0.3 s, is closed.
            await pool.get(_config(second)).generate(QUESTION, SamplingParams())
            await asyncio.sleep(0.1)
            assert _connections_to(first) == 0 and _connections_to(second) >= 1
            assert clients.open_count == 1
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_a_client_given_to_the_pool_is_never_closed_by_it(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(), "scripted")) as url:
        async with httpx.AsyncClient() as given:
            pool = BackendPool(http_client=given)
            pool.http_clients.idle_close_s = 0.0
            await pool.get(_config(url)).generate(QUESTION, SamplingParams())
            assert pool.http_clients.close_idle() == 0
            await pool.aclose()
            assert not given.is_closed
