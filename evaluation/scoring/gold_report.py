"""``python -m evaluation.scoring.gold_report``: the refusal rules' agreement with the gold set, as one JSON object.

The benchmark and the methodology page use the same figures (``evaluation.scoring.gold.report``).
Judges need a model, so their figures come from ``judge_agreement`` inside a job that has one.
"""

from __future__ import annotations

import json
import sys

from evaluation.scoring.gold import report, rules_agreement


def main() -> None:
    sys.stdout.write(json.dumps(report(rules_agreement())) + "\n")


if __name__ == "__main__":
    main()
