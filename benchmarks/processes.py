"""Several API processes (issue 13): the vote path on `libra serve --workers 1` and `--workers 2`, one run.

Run from the repository root: `python -m benchmarks.processes [--quick]`. The last line of stdout is one
JSON object with the figures of both servers, the baseline (`--workers 1`, same run, same client) and a
`targets` object (each with `value`, `goal`, `met`).

Both servers (`libra serve --no-worker`, one with `--workers 1`, one with `--workers 2`) run at once on
one embedded Postgres, on their own ports, with the instant OpenAI-style stub of benchmarks/arena.py as
every model's backend, so what is timed is the service. They are measured in alternating rounds, so that
a change in the machine's load (other work on a shared machine) falls on both. A round, for each server:
`/healthz` for `phase_s`, battles created for `battle_s`, then one vote per battle on the connection (the
session) that created it, as in benchmarks/arena.py's vote phase (16 keep-alive connections). The figures
are the medians of the rounds.

The load client is one asyncio process on the same machine. On 2 cores it competes with the servers for
CPU: the JSON reports the share of a core the client used in each phase (`client_cpu_cores`) and what the
servers used (`server_cpu_cores`), so that a ratio held down by the client can be told from one held down
by the service, and what Postgres used (`postgres_cpu_cores`; it serves both servers).
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.arena import (
    API,
    CONCURRENCY,
    Connection,
    CpuMeter,
    Ledger,
    audit,
    free_port,
    load,
    load_own,
    register_stub_models,
    server_env,
    start_server,
    start_stub,
    stop,
)
from core.migrate import upgrade
from core.pg_reaper import postmaster_pid
from core.pgserver import embedded_postgres

PROCESS_COUNTS = (1, 2)
GOAL = 1.6
VERDICTS = ("a", "b", "tie", "both_bad")
CPU_KEYS = ("client_cpu_cores", "server_cpu_cores", "postgres_cpu_cores")


@dataclass(frozen=True)
class Plan:
    rounds: int
    phase_s: float
    battle_s: float


def plan(quick: bool) -> Plan:
    return Plan(rounds=3, phase_s=2.0, battle_s=3.0) if quick else Plan(rounds=5, phase_s=8.0, battle_s=10.0)


async def one_round(port: int, meter: CpuMeter, p: Plan, rng: np.random.Generator, ledger: Ledger
                    ) -> dict[str, dict[str, Any]]:
    """/healthz, then battles, then one vote on each of them; the phases' figures."""
    connections = [Connection("127.0.0.1", port) for _ in range(CONCURRENCY)]
    made: list[str] = []

    async def healthz(http: Connection, _: int) -> bool:
        return (await http.request("GET", f"{API}/healthz"))[0] == 200

    async def create(http: Connection, _: int) -> bool:
        code, body = await http.request("POST", f"{API}/battles", {"prompt": "How do plants make food?"})
        battle = json.loads(body) if code == 201 else {}
        if battle.get("status") == "ready":
            made.append(battle["id"])
            ledger.owner[battle["id"]] = connections.index(http)
        return battle.get("status") == "ready"

    async def vote(http: Connection, i: int) -> bool:
        verdict = {"helpfulness": str(rng.choice(VERDICTS)), "safety": str(rng.choice(VERDICTS))}
        code, _ = await http.request("POST", f"{API}/battles/{made[i]}/vote", verdict, key=f"bench-{made[i]}")
        if code == 200:
            ledger.acknowledged.append(made[i])
        else:
            ledger.refusals[str(code)] = ledger.refusals.get(str(code), 0) + 1
        return code == 200

    try:
        await load(connections, healthz, seconds=0.5, total=None)  # warm-up: connections, cookies
        health = await meter.measure(load(connections, healthz, seconds=p.phase_s, total=None))
        battles = await meter.measure(load(connections, create, seconds=p.battle_s, total=None))
        ledger.battles.extend(made)
        votes = await meter.measure(load_own(connections, vote, ledger.by_connection(made)))
    finally:
        for connection in connections:
            connection.close()
    return {"healthz": health, "battle_create": battles, "vote": votes}


def medians(rounds: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for phase in rounds[0]:
        figures = [r[phase] for r in rounds]
        out[phase] = {key: round(statistics.median(f[key] for f in figures), 2)
                      for key in ("req_per_s", "p50_ms", "p99_ms", *CPU_KEYS)}
        out[phase]["errors"] = sum(f["errors"] for f in figures)
        out[phase]["requests"] = sum(f["requests"] for f in figures)
        out[phase]["req_per_s_by_round"] = [f["req_per_s"] for f in figures]
    return out


def measure(p: Plan, seed: int, rate_limits: bool = True) -> dict[str, Any]:
    stub, stub_url = start_stub()
    rng = np.random.default_rng([seed, 13])
    try:
        with tempfile.TemporaryDirectory(prefix="libra-bench-proc-", dir="/tmp") as home, \
                embedded_postgres(Path(home) / "pg") as url:
            upgrade(url)
            register_stub_models(url, stub_url)
            servers = {}
            try:
                for n in PROCESS_COUNTS:  # one after the other: two starts at once would share the migration
                    port = free_port()
                    env = {**server_env(url, str(Path(home) / f"w{n}")), "LIBRA_WEB_WORKERS": str(n)}
                    if not rate_limits:  # 0 turns them off: no counter row that every request updates
                        env.update(LIBRA_RATE_VOTES="0", LIBRA_RATE_BATTLES="0")
                    servers[n] = (port, start_server(env, port))
                ledger = Ledger([], [])
                rounds: dict[int, list] = {n: [] for n in PROCESS_COUNTS}
                postgres = postmaster_pid(Path(home) / "pg" / "pg")  # embedded_postgres(home) serves home/pg
                for _ in range(p.rounds):
                    for n, (port, process) in servers.items():
                        meter = CpuMeter(process.pid, postgres)
                        rounds[n].append(asyncio.run(one_round(port, meter, p, rng, ledger)))
            finally:
                for _, process in servers.values():
                    stop(process)
            return {"servers": {f"workers_{n}": medians(r) for n, r in rounds.items()},
                    "votes_audit": {k: v for k, v in audit(url, ledger).items() if k != "helpfulness_pair_count_total"},
                    "refused_by_status": ledger.refusals}
    finally:
        stub.kill()
        stub.join()


def targets(result: dict[str, Any]) -> dict[str, Any]:
    one, two = result["servers"]["workers_1"], result["servers"]["workers_2"]
    ratio = two["vote"]["req_per_s"] / one["vote"]["req_per_s"] if one["vote"]["req_per_s"] else None
    lost = result["votes_audit"]["lost"]
    return {
        "votes_2_vs_1": {"value": None if ratio is None else round(ratio, 3), "goal": f">= {GOAL}",
                         "met": ratio is not None and ratio >= GOAL},
        "lost_votes": {"value": lost, "goal": "0", "met": lost == 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 short rounds instead of 5 long ones")
    parser.add_argument("--seed", type=int, default=20261202)
    parser.add_argument("--no-rate-limits", action="store_true",
                        help="diagnosis: rate limits off (all clients share one address, whose counter row every "
                             "request updates); the target is measured with them on")
    args = parser.parse_args()
    p = plan(args.quick)
    started = time.perf_counter()
    result = measure(p, args.seed, rate_limits=not args.no_rate_limits)
    one, two = result["servers"]["workers_1"], result["servers"]["workers_2"]
    report = {
        "benchmark": "processes", "quick": args.quick, "seed": args.seed, "cpus": os.cpu_count(),
        "concurrency": CONCURRENCY, "rounds": p.rounds, "rate_limits": not args.no_rate_limits, "phase_seconds": p.phase_s,
        "battle_phase_seconds": p.battle_s,
        "server": "libra serve --no-worker --workers N (N = 1, 2) at once on one embedded Postgres, "
                  "instant OpenAI-style stub backends, measured in alternating rounds",
        "baseline": "workers_1: the same workload on libra serve --no-worker --workers 1, same client, same run",
        **result,
        "healthz_2_vs_1": round(two["healthz"]["req_per_s"] / one["healthz"]["req_per_s"], 3),
        "notes": [
            f"figures are medians of {p.rounds} rounds; req_per_s_by_round shows the spread",
            ("the load client is one asyncio process on the same machine: client_cpu_cores is the share of a "
             "core it used in each phase, server_cpu_cores what the server's processes used, postgres_cpu_cores "
             f"what Postgres used; on {os.cpu_count()} cores, all of them together (and anything else running on "
             "the machine) share that many cores"),
        ],
        "total_seconds": round(time.perf_counter() - started, 1),
    }
    report["targets"] = targets(result)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
