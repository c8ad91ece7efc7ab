"""HTTP backend calls with one client per endpoint against one client for every endpoint.

httpcore's connection pool asks every connection it keeps whether it has expired (a poll of its socket)
whenever a request starts or ends, and counts the pool once per connection, so with one client for
every endpoint each call's cost grows with the connections of all the endpoints. `inference.pool`
gives each endpoint a client of its own. This measures both in the same run: 8 instant stub endpoints
(`benchmarks.arena`'s stub, each in its own process), each serving models with the default concurrency
of 4, and 32 callers drawing endpoints at random; the baseline is the same pool given one shared client
(`BackendPool(http_client=...)`, how every trusted endpoint was served before). Rounds alternate.

    python -m benchmarks.backend_clients [--quick]

It also times opening an endpoint's client (CPU, medians of OPENINGS): with the TLS context the pool's
clients share (`inference.http_clients`) against httpx's own context per client, as before 2026-12-04.

Prints one JSON object last: {"figures", "baseline", "targets"}. The targets are the project's own (no
issue names one): a client per endpoint costs no more CPU per call than the shared client, and opening
one costs at most a tenth of building a TLS context of its own.
"""

import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np

from benchmarks.arena import own_cpu_s, stubs_running
from inference import BackendPool, Message, SamplingParams
from inference.http_clients import LIMITS, EndpointClients

ENDPOINTS = 8
OPENINGS = 30
CALLERS = 32
SEED = 20261202


async def _round(pool: BackendPool, urls: list[str], calls: int, rng: np.random.Generator) -> dict[str, float]:
    """`calls` streamed answers from random endpoints by CALLERS concurrent callers: CPU ms per call, calls/s."""
    backends = [pool.get({"kind": "openai", "base_url": url, "model": "stub", "max_retries": 0}) for url in urls]
    picks = iter(rng.integers(0, len(backends), size=calls).tolist())
    messages, params = [Message("user", "How do plants make food?")], SamplingParams(max_tokens=8)

    async def caller() -> None:
        for pick in picks:
            await _streamed(backends[pick], messages, params)

    began, began_cpu = time.perf_counter(), own_cpu_s()
    await asyncio.gather(*(caller() for _ in range(CALLERS)))
    wall, cpu = time.perf_counter() - began, own_cpu_s() - began_cpu
    return {"cpu_ms_per_call": cpu / calls * 1000, "calls_per_s": calls / wall}


async def _streamed(backend: Any, messages: list[Message], params: SamplingParams) -> None:
    """One streamed answer, read to its end."""
    async with backend.stream(messages, params) as stream:
        async for _ in stream:
            pass


async def battle_calls_cpu_ms(urls: list[str], callers: int, battles: int, rounds: int = 5) -> float:
    """CPU ms of this process per battle's two backend calls, median of `rounds`: `callers` battles at a time,
    each asking two stub endpoints at once for a streamed answer through one `BackendPool`, the way the API
    process answers a battle (`benchmarks.arena` compares it with `/healthz`)."""
    pool = BackendPool()
    config = {"kind": "openai", "model": "stub", "max_retries": 0, "max_concurrency": 2 * callers}
    backends = [pool.get({**config, "base_url": url}) for url in urls]
    messages, params = [Message("user", "How do plants make food?")], SamplingParams(max_tokens=8)

    async def caller(turns: Any) -> None:
        for i in turns:
            await asyncio.gather(*(_streamed(backends[(i + side) % len(backends)], messages, params) for side in (0, 1)))

    async def one_round(count: int) -> float:
        turns = iter(range(count))
        began = own_cpu_s()
        await asyncio.gather(*(caller(turns) for _ in range(callers)))
        return (own_cpu_s() - began) / count * 1000

    try:
        await one_round(4 * callers)  # warm-up: connections opened, code paths loaded
        return round(statistics.median([await one_round(battles) for _ in range(rounds)]), 4)
    finally:
        await pool.aclose()


async def _measure(urls: list[str], rounds: int, calls: int) -> dict[str, list[dict[str, float]]]:
    shared_client = httpx.AsyncClient(limits=LIMITS)
    pools = {"per_endpoint": BackendPool(), "shared": BackendPool(http_client=shared_client)}
    found: dict[str, list[dict[str, float]]] = {name: [] for name in pools}
    try:
        for name, pool in pools.items():  # warm-up: connections opened, code paths loaded
            await _round(pool, urls, CALLERS * 4, np.random.default_rng(0))
        for r in range(rounds):
            for name in (("per_endpoint", "shared") if r % 2 == 0 else ("shared", "per_endpoint")):
                found[name].append(await _round(pools[name], urls, calls, np.random.default_rng([SEED, r])))
    finally:
        for pool in pools.values():
            await pool.aclose()
        await shared_client.aclose()
    return found


def _opening_ms(open_client: Callable[[], httpx.AsyncClient]) -> float:
    """Median CPU ms to open a client (``OPENINGS`` of them, kept open until all are timed)."""
    kept, times = [], []
    for _ in range(OPENINGS):
        began = time.process_time()
        kept.append(open_client())
        times.append(time.process_time() - began)
    return round(statistics.median(times) * 1000, 4)


def measure_opening() -> dict[str, float]:
    own_tls = _opening_ms(lambda: httpx.AsyncClient(limits=LIMITS))
    clients = EndpointClients(())
    shared_tls = _opening_ms(lambda: clients.new_client(checked=False))
    return {"shared_tls_cpu_ms": shared_tls, "own_tls_cpu_ms": own_tls}


def measure(quick: bool) -> dict[str, Any]:
    rounds, calls = (5, 1_000) if quick else (9, 3_000)
    with stubs_running(ENDPOINTS) as urls:
        found = asyncio.run(_measure(urls, rounds, calls))
    return report(found, rounds, calls, measure_opening())


def report(found: dict[str, list[dict[str, float]]], rounds: int, calls: int,
           opening: dict[str, float] | None = None) -> dict[str, Any]:
    def median(name: str, key: str) -> float:
        return round(statistics.median(r[key] for r in found[name]), 4)

    ratio = round(median("per_endpoint", "cpu_ms_per_call") / median("shared", "cpu_ms_per_call"), 3)
    found_report = {
        "figures": {"per_endpoint": {"cpu_ms_per_call": median("per_endpoint", "cpu_ms_per_call"),
                                     "calls_per_s": median("per_endpoint", "calls_per_s")},
                    "endpoints": ENDPOINTS, "callers": CALLERS, "rounds": rounds, "calls_per_round": calls,
                    "note": "streamed answers from instant stubs; CPU is the calling process's only; medians "
                            "of alternating rounds"},
        "baseline": {"shared": {"cpu_ms_per_call": median("shared", "cpu_ms_per_call"),
                                "calls_per_s": median("shared", "calls_per_s")},
                     "note": "the same pool given one client for every endpoint"},
        "targets": {"per_endpoint_over_shared_cpu_per_call": {"value": ratio, "goal": "<= 1.0 (the project's own)",
                                                              "met": ratio <= 1.0}},
    }
    if opening is not None:
        share = round(opening["shared_tls_cpu_ms"] / opening["own_tls_cpu_ms"], 4)
        found_report["figures"]["opening_a_client_cpu_ms"] = opening["shared_tls_cpu_ms"]
        found_report["baseline"]["opening_a_client_with_its_own_tls_cpu_ms"] = opening["own_tls_cpu_ms"]
        found_report["targets"]["opening_shared_tls_over_own_tls"] = {
            "value": share, "goal": "<= 0.1 (the project's own)", "met": share <= 0.1}
    return found_report


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:])))
