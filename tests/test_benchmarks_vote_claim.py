"""The vote-claim benchmark's report: medians per answer length and the target's ratio at 330 words (no timing
asserted; the figures come from `python -m benchmarks.vote_claim`)."""

import json

from benchmarks import vote_claim


def test_the_report_compares_medians_of_stored_counts_against_counting_at_vote_time() -> None:
    found = {"stored": {5: [0.4, 0.5, 9.0], 330: [0.45, 0.5, 0.4]},
             "counted_at_vote": {5: [0.5, 0.5, 0.6], 330: [0.9, 1.0, 0.1]}}
    report = vote_claim.report(found, rounds=3, claims=10)
    json.dumps(report)
    assert report["figures"]["claim_ms"] == {"5_words": 0.5, "330_words": 0.45}
    assert report["baseline"]["claim_ms"] == {"5_words": 0.5, "330_words": 0.9}
    assert report["targets"]["claim_stored_over_counted_at_vote"] == {"value": 0.5, "goal": "<= 0.75 (the project's own)",
                                                                      "met": True}
    same = vote_claim.report({"stored": {330: [1.0]}, "counted_at_vote": {330: [1.1]}}, rounds=1, claims=1)
    assert not same["targets"]["claim_stored_over_counted_at_vote"]["met"]
