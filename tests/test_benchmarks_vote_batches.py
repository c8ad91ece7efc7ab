"""The vote-batches benchmark's report: medians by number of callers, the batch's and the vote's shares, and
the target's ratio (no timing asserted; the figures come from `python -m benchmarks.vote_batches`)."""

import json

import pytest

from benchmarks import vote_batches


def _round(callers: int, cpu: float) -> dict[str, float]:
    return {"callers": callers, "cpu_ms_per_vote": cpu, "postgres_cpu_ms_per_vote": 0.1, "votes_per_s": 100.0}


def test_the_report_splits_a_votes_cost_between_its_batch_and_itself() -> None:
    # Medians 1.6 alone and 0.6 together; with batch b and vote v: b + v = 1.6 and b / 16 + v = 0.6, so b = 16 / 15 and v = 1.6 - 16 / 15.
    found = [_round(1, 1.6), _round(16, 0.6), _round(1, 9.0), _round(16, 0.5), _round(1, 1.5), _round(16, 0.7)]
    report = vote_batches.report(found, cast=600)
    json.dumps(report)
    assert report["baseline"]["alone"]["cpu_ms_per_vote"] == 1.6 and report["figures"]["together"]["cpu_ms_per_vote"] == 0.6
    assert report["figures"]["cpu_ms_per_batch"] == pytest.approx(16 / 15, abs=1e-4)
    assert report["figures"]["cpu_ms_per_vote_in_a_batch"] == pytest.approx(1.6 - 16 / 15, abs=1e-4)
    assert report["targets"]["together_over_alone_cpu_per_vote"] == {"value": 0.375, "goal": "<= 0.5 (the project's own)",
                                                                    "met": True}
    no_gain = vote_batches.report([_round(1, 1.0), _round(16, 0.9)], cast=2)
    assert not no_gain["targets"]["together_over_alone_cpu_per_vote"]["met"]
