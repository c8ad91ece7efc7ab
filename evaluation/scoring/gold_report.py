"""``python -m evaluation.scoring.gold_report``: the refusal rules' agreement with the gold sets, as one JSON object.

Per split (``tune``, ``heldout``, ``all``), measure (``binary``, ``verdict``) and failure kind; the
methodology page serves the same figures (``evaluation.scoring.gold.report``). Judges need a model,
so their figures come from the ``evaluation:measure_judge`` job, or ``python -m benchmarks.scoring``.
"""

from __future__ import annotations

import json
import sys

from evaluation.scoring.gold import report, rules_agreement


def main() -> None:
    sys.stdout.write(json.dumps(report(rules_agreement())) + "\n")


if __name__ == "__main__":
    main()
