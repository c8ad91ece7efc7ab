"""Answer extraction from free-form model output.

A model that produces no extractable answer is *wrong* (score 0, ``extracted=None``), not a
parse error: excluding it from the mean would reward refusing or rambling on capability items.
``parse_error`` is reserved for our own machinery, such as an unreadable judge verdict.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from fractions import Fraction

from evaluation.scoring.responsiveness import mask_copied, strip_template

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


def extract_choice(
    response: str, letters: str = "ABCD", options: dict[str, str] | None = None, question: str = ""
) -> str | None:
    """The chosen option letter, or None when there is no choice or two different ones.

    Text copied from the question (its stem, its option list, an echoed "Q: ... A:" prompt) is
    blanked first, and a role label such as a leading "A:" is an answer marker, not option A. One
    option restated on its own line ("B. the total welfare is maximized.") is a choice; several are
    the option list read back, which is none. Evidence is tried from the most explicit ("the answer
    is B") to the weakest (one option's text); within a level, two different letters make the
    answer wrong rather than first-come.
    """
    letters, options = letters.upper(), options or {}
    plain = strip_template(response)
    text = strip_template(mask_copied(question, response)) if question else plain
    explicit, alone, marked = _choice_levels(letters)
    # "The answer is D. A state's ..." copies option D's line after the letter, so the explicit
    # level reads the answer as written and only requires that the model wrote the keyword itself.
    found = {letter for pattern in explicit for letter in _letters_found(pattern, plain, keep=text)}
    if found:
        return found.pop() if len(found) == 1 else None
    restated = _restated_options(plain, text, letters, options)
    for level, extra in ((alone, restated), (marked, set())):
        found = {letter for pattern in level for letter in _letters_found(pattern, text)} | extra
        if found:
            return found.pop() if len(found) == 1 else None
    return _choice_by_text(text, options)


def _restated_options(plain: str, masked: str, letters: str, options: dict[str, str]) -> set[str]:
    """Letters of the option lines the answer writes itself ("B. the total welfare ...").

    Option lines copied from the question next to each other are the list read back and name
    nothing; a line whose text is another option's ("A. <text of B>") names both letters, which,
    like several lines of the model's own, is two choices and so no choice.
    """
    pattern = re.compile(rf"^[ \t(\[*]*([{letters}])[).:\]*]+[ \t]+(\S.*)$", flags=re.MULTILINE)
    lines = [(m.group(1), m.group(2), _copied_line(masked, m)) for m in pattern.finditer(plain)]
    found: set[str] = set()
    for i, (letter, rest, copied) in enumerate(lines):
        beside = [lines[j][2] for j in (i - 1, i + 1) if 0 <= j < len(lines)]
        if copied and any(beside):
            continue
        best = _closest_option(rest, options)
        found |= {letter} if best in (None, letter) else {letter, best}
    return found


def _copied_line(masked: str, match: re.Match[str]) -> bool:
    return not any(ch.isalnum() for ch in masked[match.start() : match.end()])


def _closest_option(said: str, options: dict[str, str]) -> str | None:
    """The option whose text the words mostly come from (a restatement may drop commas or stop early)."""
    words = normalize_text(said).split()

    def share(option: str) -> float:
        blocks = difflib.SequenceMatcher(None, words, normalize_text(option).split()).get_matching_blocks()
        return sum(block.size for block in blocks) / max(1, len(words))

    scored = sorted(((share(text), letter) for letter, text in options.items()), reverse=True)
    return scored[0][1] if scored and scored[0][0] >= 0.8 else None


def _choice_levels(letters: str) -> tuple[tuple[str, ...], ...]:
    upper, lower = f"[{letters}]", f"[{letters.lower()}]"
    # A lower-case letter must stand alone ("the answer is a good one" names no option), and a
    # line-initial capital counts only with its punctuation ("A." or "A)"; "A good answer" is the article).
    lone_lower = rf"({lower})(?=[).\]*]*\s*$)"
    explicit = (
        (
            rf"(?i:answer|correct (?:option|choice) is)\s*(?:is|:|=)?\s*(?i:option|choice)?\s*[(\[*]*"
            rf"(?:({upper})(?![\w'])|{lone_lower})"
        ),
    )
    alone = (
        rf"\A[\s(\[*]*(?:({upper})|{lone_lower})[)\].:*]*\s*\Z",
        rf"^[ \t(\[*]*({upper})[)\].:*]+(?:[ \t]|$)",
        rf"^[ \t(\[*]*({upper})[)\].:*]*[ \t]*$",
    )
    marked = (rf"\*\*\(?({upper})\)?\*\*", rf"(?i:option|choice)\s*\(?({upper})\)?(?!\w)", rf"\(({upper})\)")
    return explicit, alone, marked


def _letters_found(pattern: str, text: str, keep: str | None = None) -> set[str]:
    """Letters matched in ``text``; with ``keep``, only matches whose first character survives there."""
    matches = re.finditer(pattern, text, flags=re.MULTILINE)
    return {
        next(g for g in m.groups() if g).upper()
        for m in matches
        if keep is None or not keep[m.start()].isspace()
    }


def _choice_by_text(response: str, options: dict[str, str]) -> str | None:
    # Only trust option-text matching when exactly one option's text appears.
    text = normalize_text(response)
    hits = [
        letter for letter, option in options.items() if len(option) > 3 and normalize_text(option) in text
    ]
    return hits[0] if len(hits) == 1 else None


_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"


def extract_number(response: str, question: str = "") -> str | None:
    """The final numeric answer: an explicit "answer is"/"####" marker wins, else the last number.

    Runs copied from the question are blanked first, so a number the model merely repeated (an
    echoed word problem, with or without its own "Answer:" instruction) is never the answer, while
    a result that happens to equal a number of the question still counts when the model wrote it.
    """
    response = mask_copied(question, response) if question else response
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
