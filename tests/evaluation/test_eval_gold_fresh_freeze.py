"""The fresh gold verdict set is frozen and independent of the set the rules were tuned on.

gold_fresh.yaml is the held-out set written after gold_verdicts.yaml's held-out part had been read
during tuning. Its figures only mean something if nobody edits an item or a label after seeing what
a detector says, so the file is pinned by a fingerprint; the other tests check the promises its
header makes (labels valid, referral only on care items, encodings that really decode).
"""

from __future__ import annotations

import binascii
import codecs
import re
from collections import Counter
from typing import Any

import pytest

from evaluation.scoring.verdicts import Verdict
from tests.evaluation.gold_checks import (
    ALLOWED_VERDICTS,
    ENGLISH_MARKERS,
    FAILURE_KINDS,
    FRESH_PATH,
    GOLD_PATH,
    KINDS,
    OPTIONAL,
    REQUIRED,
    decode_base64_runs,
    english_markers,
    fingerprint,
    load,
)

TUNING_PATH = GOLD_PATH

# sha256 of the canonical JSON of the sorted [id, split, verdict, referral, sha256(prompt + "\n" +
# response)] rows; see gold_checks.fingerprint. Version 1, written 2026-12-02 before any detector saw it.
FROZEN_FINGERPRINT = "a78ad930886d134f2a86cbeea87d2d2f669be26cffd7c199ed38a6e6b0fef1e7"
FROZEN_VERSION = 1
MINIMUM_ITEMS = 170

FREEZE_MESSAGE = (
    "gold_fresh.yaml changed: the fresh held-out gold set is frozen (the figures reported on it mean "
    "'measured on answers nobody tuned against'). Changing it needs a new `version`, a new "
    "fingerprint here, and an entry in the history of docs/evaluation.md saying what changed and "
    "which set later figures were measured on."
)

# This set's answers also apologise and promise, so two more words count as English.
FRESH_MARKERS = ENGLISH_MARKERS | {"will", "sorry"}
# Wider than a strict base64 run, so a garbled run with stray symbols is caught and fails to decode.
LOOSE_BASE64_RUN = r"[A-Za-z0-9+/=!@*]{16,}"


def _items() -> list[dict[str, Any]]:
    return load(FRESH_PATH)["items"]


def _english_markers(text: str) -> int:
    return english_markers(text, FRESH_MARKERS)


def _decode_base64(response: str) -> str:
    """The base64 run(s) of an answer decoded strictly; raises when any run is not valid base64."""
    return " ".join(decode_base64_runs(response, LOOSE_BASE64_RUN))


def _encoded(verdict_is_garbled: bool) -> list[dict[str, Any]]:
    return [
        i for i in _items()
        if i["failure_kind"] == "encoded" and (i["verdict"] == "non_responsive") == verdict_is_garbled
    ]


def test_fresh_set_is_frozen() -> None:
    document = load(FRESH_PATH)
    assert document["version"] == FROZEN_VERSION, FREEZE_MESSAGE
    assert fingerprint(document["items"]) == FROZEN_FINGERPRINT, FREEZE_MESSAGE


def test_fingerprint_sees_a_relabel_an_edited_answer_and_a_referral_flip() -> None:
    items = _items()
    relabelled = [dict(i) for i in items]
    relabelled[0]["verdict"] = "complied" if relabelled[0]["verdict"] != "complied" else "refused"
    edited = [dict(i) for i in items]
    edited[-1]["response"] += " "
    flipped = [dict(i) for i in items]
    care = next(k for k, i in enumerate(flipped) if i["kind"] == "care")
    flipped[care]["referral"] = not flipped[care]["referral"]
    prints = {fingerprint(x) for x in (items, relabelled, edited, flipped)}
    assert len(prints) == 4


def test_items_are_many_unique_and_well_formed() -> None:
    items = _items()
    assert len(items) >= MINIMUM_ITEMS
    ids = [i["id"] for i in items]
    assert len(set(ids)) == len(ids)
    verdicts = {v.value for v in Verdict}
    for item in items:
        assert REQUIRED <= set(item) and set(item) <= REQUIRED | OPTIONAL, item["id"]
        assert re.fullmatch(r"f\d{3}", item["id"]) and item["split"] == "fresh", item["id"]
        assert item["kind"] in KINDS and item["failure_kind"] in FAILURE_KINDS, item["id"]
        assert item["verdict"] in verdicts, item["id"]
        assert isinstance(item["prompt"], str) and item["prompt"].strip(), item["id"]
        assert isinstance(item["response"], str) and isinstance(item["style"], str), item["id"]
        allowed = ALLOWED_VERDICTS.get(item["failure_kind"])
        assert allowed is None or item["verdict"] in allowed, item["id"]


def test_every_verdict_and_failure_kind_is_present() -> None:
    items = _items()
    assert {i["verdict"] for i in items} == {v.value for v in Verdict}
    assert {i["failure_kind"] for i in items} == FAILURE_KINDS
    assert 1 <= Counter(i["verdict"] for i in items)["unclear"] <= 5
    assert {i["kind"] for i in items if i["verdict"] == "non_responsive"} == KINDS


def test_referral_is_given_exactly_for_care_items() -> None:
    for item in _items():
        if item["kind"] == "care":
            assert isinstance(item.get("referral"), bool), item["id"]
        else:
            assert "referral" not in item, item["id"]


def test_encoding_is_given_exactly_for_encoded_items() -> None:
    items = _items()
    assert {i.get("encoding") for i in items if i["failure_kind"] == "encoded"} == {"base64", "rot13"}
    assert all("encoding" not in i for i in items if i["failure_kind"] != "encoded")


def test_well_formed_encoded_answers_decode_to_text() -> None:
    for item in _encoded(verdict_is_garbled=False):
        if item["encoding"] == "base64":
            decoded = _decode_base64(item["response"])
            assert decoded.isprintable() and _english_markers(decoded) >= 2, item["id"]
        else:
            decoded = codecs.decode(item["response"], "rot13")
            assert _english_markers(decoded) > _english_markers(item["response"]), item["id"]
            assert _english_markers(decoded) >= 3, item["id"]


def test_garbled_base64_answers_do_not_decode() -> None:
    garbled = [i for i in _encoded(verdict_is_garbled=True) if i["encoding"] == "base64"]
    assert garbled
    for item in garbled:
        with pytest.raises((binascii.Error, UnicodeDecodeError, ValueError)):
            _decode_base64(item["response"])


def test_no_prompt_or_answer_is_shared_with_the_tuning_set() -> None:
    # Stock one-liners ("I can't help with that.") recur in any set; longer texts must not.
    def long_texts(items: list[dict[str, Any]]) -> set[str]:
        texts = {i["prompt"].strip().lower() for i in items}
        texts |= {i["response"].strip().lower() for i in items}
        return {t for t in texts if len(t) >= 40}

    shared = long_texts(load(TUNING_PATH)["items"]) & long_texts(_items())
    assert not shared, f"{len(shared)} texts also appear in gold_verdicts.yaml"
