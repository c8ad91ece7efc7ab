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
