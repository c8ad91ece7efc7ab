"""The several-processes benchmark's pure parts: medians of rounds, the shape of its targets, the CPU meter.
No timings are asserted (the figures come from `python -m benchmarks.processes`)."""

import asyncio
import json
import os

import numpy as np

from benchmarks import processes
from benchmarks.arena import CpuMeter, Phase


def _phase(rps: float, errors: int = 0) -> dict:
    return {"req_per_s": rps, "p50_ms": 1.0, "p99_ms": 2.0, "client_cpu_cores": 0.5, "server_cpu_cores": 1.0,
            "postgres_cpu_cores": 0.2, "errors": errors, "requests": 10}


def test_medians_take_the_middle_round_and_keep_the_spread() -> None:
    rounds = [{"vote": _phase(100.0)}, {"vote": _phase(300.0, errors=1)}, {"vote": _phase(200.0)}]
    found = processes.medians(rounds)["vote"]
    assert found["req_per_s"] == 200.0
    assert found["req_per_s_by_round"] == [100.0, 300.0, 200.0]
    assert found["errors"] == 1 and found["requests"] == 30


def test_the_target_is_the_vote_ratio_of_two_processes_to_one() -> None:
    result = {"servers": {"workers_1": {"vote": {"req_per_s": 100.0}}, "workers_2": {"vote": {"req_per_s": 150.0}}},
              "votes_audit": {"lost": 0}}
    found = processes.targets(result)
    json.dumps(found)
    assert found["votes_2_vs_1"] == {"value": 1.5, "goal": ">= 1.6", "met": False}
    assert found["lost_votes"]["met"]
    result["servers"]["workers_2"]["vote"]["req_per_s"] = 170.0
    assert processes.targets(result)["votes_2_vs_1"]["met"]


def test_the_cpu_meter_counts_the_work_of_the_measured_phase() -> None:
    async def busy() -> Phase:
        end = sum(i * i for i in range(300_000))  # some client CPU for the meter to see
        return Phase(requests=int(end > 0), errors=0, seconds=1.0, latencies_s=np.array([0.001]))

    figures = asyncio.run(CpuMeter(os.getpid(), None).measure(busy()))
    assert figures["requests"] == 1 and figures["client_cpu_cores"] > 0
    assert figures["postgres_cpu_cores"] == 0.0
    assert figures["client_cpu_ms_per_request"] > 0 and figures["postgres_cpu_ms_per_request"] == 0.0
