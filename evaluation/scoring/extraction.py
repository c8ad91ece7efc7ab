"""Answer extraction from free-form model output.

A model that produces no extractable answer is *wrong* (score 0, ``extracted=None``), not a
parse error: excluding it from the mean would reward refusing or rambling on capability items.
``parse_error`` is reserved for our own machinery, such as an unreadable judge verdict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from fractions import Fraction

_WS = re.compile(r"\s+")
_EDGE_PUNCT = " \t\n\"'`*_.,;:!?()[]{}"


def normalize_text(text: str) -> str:
    """Case-folded, whitespace-collapsed text without surrounding punctuation or markdown."""
    return _WS.sub(" ", text.casefold()).strip(_EDGE_PUNCT)


def exact_match(response: str, target: str) -> bool:
    return normalize_text(response) == normalize_text(target)


def extract_regex(response: str, pattern: str) -> str | None:
    """Group 1 (or the whole match) of the *last* match: models restate the question first."""
    matches = list(re.finditer(pattern, response, flags=re.IGNORECASE | re.MULTILINE))
    if not matches:
        return None
    last = matches[-1]
    return last.group(1) if last.groups() else last.group(0)


def parse_options(options: str) -> dict[str, str]:
    """``"A. foo\\nB. bar"`` -> ``{"A": "foo", "B": "bar"}``."""
    found = re.findall(r"^\s*([A-Z])[.)]\s*(.+?)\s*$", options, flags=re.MULTILINE)
    return {letter: text for letter, text in found}


def extract_choice(response: str, letters: str = "ABCD", options: dict[str, str] | None = None) -> str | None:
    """The chosen option letter, trying explicit statements before weaker evidence."""
    cls = f"[{letters}]"
    patterns = (
        rf"answer\s*(?:is|:)?\s*(?:option\s*)?[\(\[*]*({cls})\b",
        rf"^\s*[\(\[*]*({cls})[\)\].:*]*(?:\s|$)",
        rf"\*\*\(?({cls})\)?\*\*",
        rf"(?:option|choice)\s*\(?({cls})\)?\b",
        rf"\(({cls})\)",
    )
    for pattern in patterns:
        found = re.search(pattern, response, flags=re.IGNORECASE | re.MULTILINE)
        if found:
            return found.group(1).upper()
    return _choice_by_text(response, options or {})


def _choice_by_text(response: str, options: dict[str, str]) -> str | None:
    # Only trust option-text matching when exactly one option's text appears.
    text = normalize_text(response)
    hits = [
        letter for letter, option in options.items() if len(option) > 3 and normalize_text(option) in text
    ]
    return hits[0] if len(hits) == 1 else None


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"


def extract_number(response: str) -> str | None:
    """The final numeric answer: an explicit "answer is"/"####" marker wins, else the last number."""
    for pattern in (rf"####\s*\$?({_NUMBER})", rf"answer\s*(?:is|:)\s*\**\$?\s*({_NUMBER})"):
        found = extract_regex(response, pattern)
        if found is not None:
            return found
    numbers = re.findall(_NUMBER, response)
    return numbers[-1] if numbers else None


def parse_number(text: str) -> Fraction | None:
    cleaned = text.replace(",", "").replace("$", "").strip()
    try:
        return Fraction(cleaned)
    except (ValueError, ZeroDivisionError):
        return None


def numbers_equal(got: str, want: str) -> bool:
    a, b = parse_number(got), parse_number(want)
    return a is not None and b is not None and abs(float(a - b)) <= 1e-6 * max(1.0, abs(float(b)))


def any_exact(response: str, targets: Sequence[str]) -> bool:
    return any(exact_match(response, target) for target in targets)
