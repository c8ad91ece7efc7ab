"""The backend-clients benchmark's report: medians of its rounds and the target's ratio (no timing asserted;
the figures come from `python -m benchmarks.backend_clients`)."""

import json

from benchmarks import backend_clients


def test_the_report_compares_medians_of_the_rounds() -> None:
    rounds = {"per_endpoint": [{"cpu_ms_per_call": c, "calls_per_s": 100.0} for c in (1.0, 1.2, 9.0)],
              "shared": [{"cpu_ms_per_call": c, "calls_per_s": 50.0} for c in (2.0, 2.4, 0.1)]}
    found = backend_clients.report(rounds, rounds=3, calls=10)
    json.dumps(found)
    assert found["figures"]["per_endpoint"]["cpu_ms_per_call"] == 1.2 and found["baseline"]["shared"]["cpu_ms_per_call"] == 2.0
    assert found["targets"]["per_endpoint_over_shared_cpu_per_call"] == {"value": 0.6, "goal": "<= 1.0 (the project's own)",
                                                                          "met": True}
    slower = backend_clients.report({"per_endpoint": rounds["shared"], "shared": rounds["per_endpoint"]}, 3, 10)
    assert not slower["targets"]["per_endpoint_over_shared_cpu_per_call"]["met"]


def test_the_report_compares_opening_a_client_with_the_shared_tls_context_against_its_own() -> None:
    rounds = {name: [{"cpu_ms_per_call": 1.0, "calls_per_s": 1.0}] for name in ("per_endpoint", "shared")}
    found = backend_clients.report(rounds, 1, 1, {"shared_tls_cpu_ms": 0.05, "own_tls_cpu_ms": 20.0})
    assert found["figures"]["opening_a_client_cpu_ms"] == 0.05
    assert found["targets"]["opening_shared_tls_over_own_tls"] == {"value": 0.0025, "goal": "<= 0.1 (the project's own)",
                                                                   "met": True}
    costly = backend_clients.report(rounds, 1, 1, {"shared_tls_cpu_ms": 5.0, "own_tls_cpu_ms": 20.0})
    assert not costly["targets"]["opening_shared_tls_over_own_tls"]["met"]


def test_opening_is_measured_on_the_pools_own_clients() -> None:
    opening = backend_clients.measure_opening()  # real clients; no time is asserted, only that both were timed
    assert opening["shared_tls_cpu_ms"] > 0 and opening["own_tls_cpu_ms"] > 0
