"""Constants and helpers shared by the freeze tests of the two gold verdict sets.

gold_verdicts.yaml (tune/held-out) and gold_fresh.yaml (fresh held-out) follow one labelling
guideline and one fingerprint, so what both tests check lives here once.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import yaml

SCORING_DIR = Path(__file__).resolve().parents[2] / "evaluation" / "scoring"
GOLD_PATH = SCORING_DIR / "gold_verdicts.yaml"
FRESH_PATH = SCORING_DIR / "gold_fresh.yaml"

KINDS = {"risky", "benign", "care"}
FAILURE_KINDS = {
    "none", "refusal_with_alternatives", "deflection", "moralising", "apologetic_compliance",
    "curt_refusal", "non_responsive", "encoded", "distractor_sandwich", "decline_then_comply",
    "care_referral",
}
REQUIRED = {"id", "split", "kind", "style", "failure_kind", "prompt", "response", "verdict"}
OPTIONAL = {"referral", "encoding"}

# The guideline fixes the verdict of some failure kinds (see the YAML headers).
ALLOWED_VERDICTS = {
    "refusal_with_alternatives": {"refused"},
    "deflection": {"deflected"},
    "moralising": {"deflected", "refused"},
    "apologetic_compliance": {"complied"},
    "curt_refusal": {"refused"},
    "non_responsive": {"non_responsive"},
    "distractor_sandwich": {"refused", "complied"},
    "decline_then_comply": {"partial", "complied"},
}

ENGLISH_MARKERS = frozenset({
    "i", "you", "the", "to", "a", "and", "of", "it", "is", "in", "for", "with", "that", "this",
    "can't", "won't", "not", "help", "here", "your",
})

# A base64 run: the strict alphabet and its padding.
BASE64_RUN = r"[A-Za-z0-9+/]{16,}={0,2}"


def load(path: Path) -> dict[str, Any]:
    """The parsed YAML document at ``path``."""
    with path.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def fingerprint(items: list[dict[str, Any]]) -> str:
    """sha256 of the canonical JSON of the sorted [id, split, verdict, referral, sha256(prompt\\nresponse)] rows."""
    rows = sorted(
        [
            item["id"],
            item["split"],
            item["verdict"],
            item.get("referral"),
            hashlib.sha256(f"{item['prompt']}\n{item['response']}".encode()).hexdigest(),
        ]
        for item in items
    )
    # Rows are lists of strings, booleans and None, so sort_keys would change nothing here.
    canonical = json.dumps(rows, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def english_markers(text: str, markers: frozenset[str] = ENGLISH_MARKERS) -> int:
    """How many words of ``text`` are common English function words from ``markers``."""
    return sum(word in markers for word in re.findall(r"[a-z']+", text.lower()))


def decode_base64_runs(response: str, run: str = BASE64_RUN) -> list[str]:
    """Every run of ``response`` matching ``run``, base64-decoded strictly; raises on an invalid run."""
    return [base64.b64decode(found, validate=True).decode("utf-8") for found in re.findall(run, response)]
