"""The gold verdict set is frozen: its split was made once, before any tuning, and must not drift.

Tuning a scorer on items that later count as held-out, or relabelling an item after seeing what a
scorer says, would make the held-out figures in docs/evaluation.md meaningless. These tests pin the
file by a fingerprint and check the properties the set promises (size, coverage, valid labels,
encodings that really decode).
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections import Counter
from typing import Any

import numpy as np
import pytest

from evaluation.scoring.verdicts import Verdict
from tests.evaluation.gold_checks import (
    ALLOWED_VERDICTS,
    FAILURE_KINDS,
    GOLD_PATH,
    KINDS,
    OPTIONAL,
    REQUIRED,
    decode_base64_runs,
    english_markers,
    fingerprint,
    load,
)

# sha256 of the canonical JSON of the sorted (id, split, verdict, referral, sha256(prompt + "\n" +
# response)) rows of every item; see gold_checks.fingerprint. Version 1, written before any scorer was tuned.
FROZEN_FINGERPRINT = "9aeee7806c161ee93dbed42d63152e64df241075a2c4663f5939a7cc9fd96a57"
FROZEN_VERSION = 1

SPLITS = {"tune", "heldout"}

# The coverage the set was written to (issue 10, item 3).
MINIMUM_PER_FAILURE_KIND = {
    "refusal_with_alternatives": 25, "deflection": 25, "moralising": 20,
    "apologetic_compliance": 15, "curt_refusal": 15, "decline_then_comply": 20,
    "non_responsive": 30, "encoded": 15, "distractor_sandwich": 15, "care_referral": 1,
}

FREEZE_MESSAGE = (
    "gold_verdicts.yaml changed: the gold set is frozen (its held-out split is what the reported "
    "figures mean). Changing it needs a new `version`, a new fingerprint here, and an entry in the "
    "history of docs/evaluation.md saying what changed and which split later figures were measured on."
)

def _document() -> dict[str, Any]:
    return load(GOLD_PATH)


def _items() -> list[dict[str, Any]]:
    return _document()["items"]


def _stratified_split(items: list[dict[str, Any]], seed: int) -> dict[str, str]:
    """The documented split: strata (failure_kind, verdict), sorted; half of each held out."""
    rng = np.random.default_rng(seed)
    strata: dict[tuple[str, str], list[str]] = {}
    for item in sorted(items, key=lambda i: i["id"]):
        strata.setdefault((item["failure_kind"], item["verdict"]), []).append(item["id"])
    split: dict[str, str] = {}
    for key in sorted(strata):
        ids = strata[key]
        n_heldout = len(ids) // 2 + (int(rng.integers(2)) if len(ids) % 2 else 0)
        held = {ids[k] for k in rng.permutation(len(ids))[:n_heldout]}
        split.update({i: "heldout" if i in held else "tune" for i in ids})
    return split


def test_gold_set_is_frozen() -> None:
    document = _document()
    assert document["version"] == FROZEN_VERSION, FREEZE_MESSAGE
    assert fingerprint(document["items"]) == FROZEN_FINGERPRINT, FREEZE_MESSAGE


def test_fingerprint_sees_a_relabel_and_a_moved_item() -> None:
    items = _items()
    relabelled = [dict(i) for i in items]
    relabelled[0]["verdict"] = "complied" if relabelled[0]["verdict"] != "complied" else "refused"
    moved = [dict(i) for i in items]
    moved[-1]["split"] = "tune" if moved[-1]["split"] == "heldout" else "heldout"
    assert len({fingerprint(items), fingerprint(relabelled), fingerprint(moved)}) == 3


def test_split_is_the_documented_seeded_stratified_split() -> None:
    document = _document()
    expected = _stratified_split(document["items"], document["split_seed"])
    assert document["split_seed"] == 20261202
    assert {i["id"]: i["split"] for i in document["items"]} == expected
    sizes = Counter(i["split"] for i in document["items"])
    assert abs(sizes["tune"] - sizes["heldout"]) <= 0.1 * len(document["items"])


def test_items_are_many_unique_and_well_formed() -> None:
    items = _items()
    assert len(items) >= 240
    ids = [i["id"] for i in items]
    assert len(set(ids)) == len(ids)
    verdicts = {v.value for v in Verdict}
    for item in items:
        assert REQUIRED <= set(item) and set(item) <= REQUIRED | OPTIONAL, item["id"]
        assert re.fullmatch(r"v\d{3}", item["id"]), item["id"]
        assert item["split"] in SPLITS and item["kind"] in KINDS, item["id"]
        assert item["failure_kind"] in FAILURE_KINDS and item["verdict"] in verdicts, item["id"]
        assert isinstance(item["prompt"], str) and item["prompt"].strip(), item["id"]
        assert isinstance(item["response"], str) and isinstance(item["style"], str), item["id"]
        allowed = ALLOWED_VERDICTS.get(item["failure_kind"])
        assert allowed is None or item["verdict"] in allowed, item["id"]


def test_referral_is_given_exactly_for_care_items() -> None:
    for item in _items():
        if item["kind"] == "care":
            assert isinstance(item.get("referral"), bool), item["id"]
        else:
            assert "referral" not in item, item["id"]


@pytest.mark.parametrize("split", sorted(SPLITS))
def test_every_failure_kind_and_verdict_is_in_each_split(split: str) -> None:
    part = [i for i in _items() if i["split"] == split]
    assert {i["failure_kind"] for i in part} == FAILURE_KINDS
    assert {i["verdict"] for i in part} == {v.value for v in Verdict}


def test_coverage_meets_the_written_minimums() -> None:
    items = _items()
    by_failure = Counter(i["failure_kind"] for i in items)
    for failure_kind, minimum in MINIMUM_PER_FAILURE_KIND.items():
        assert by_failure[failure_kind] >= minimum, failure_kind
    by_kind = Counter(i["kind"] for i in items)
    assert by_kind["benign"] >= 30 and by_kind["care"] >= 25
    assert 1 <= Counter(i["verdict"] for i in items)["unclear"] <= 10
    non_responsive_kinds = {i["kind"] for i in items if i["verdict"] == "non_responsive"}
    assert non_responsive_kinds == KINDS


def test_encoded_items_decode_when_well_formed() -> None:
    encoded = [i for i in _items() if i["failure_kind"] == "encoded"]
    assert {i.get("encoding") for i in encoded} == {"base64", "rot13"}
    assert all("encoding" not in i for i in _items() if i["failure_kind"] != "encoded")
    for item in encoded:
        if item["verdict"] == "non_responsive":
            continue  # garbled by design; checked below
        if item["encoding"] == "base64":
            decoded = " ".join(decode_base64_runs(item["response"]))
            assert decoded.isprintable() and english_markers(decoded) >= 2, item["id"]
        else:
            decoded = codecs.decode(item["response"], "rot13")
            assert english_markers(decoded) > english_markers(item["response"]), item["id"]
            assert english_markers(decoded) >= 3, item["id"]


def test_garbled_base64_items_do_not_decode_to_text() -> None:
    garbled = [
        i for i in _items()
        if i["failure_kind"] == "encoded" and i["verdict"] == "non_responsive" and i["encoding"] == "base64"
    ]
    assert garbled
    for item in garbled:
        with pytest.raises((binascii.Error, UnicodeDecodeError, ValueError)):
            decode_base64_runs(item["response"])
