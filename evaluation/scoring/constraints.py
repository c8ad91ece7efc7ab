"""Instruction-following constraints that a program can verify.

Each constraint is a mapping with a ``type`` and its parameters, e.g.
``{"type": "max_words", "value": 50}``. The item scores 1 only when every constraint holds
(strict, prompt-level accuracy); the per-constraint results are stored as details.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from evaluation.scoring.responsiveness import mask_copied

Check = Callable[[str, Mapping[str, Any]], bool]

_BULLET = re.compile(r"^\s*[-*•]\s+\S", re.MULTILINE)
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+\S", re.MULTILINE)
_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'’-]+", text)


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", text, flags=re.IGNORECASE) is not None


def _max_words(text: str, c: Mapping[str, Any]) -> bool:
    return len(_words(text)) <= int(c["value"])


def _min_words(text: str, c: Mapping[str, Any]) -> bool:
    return len(_words(text)) >= int(c["value"])


def _include_words(text: str, c: Mapping[str, Any]) -> bool:
    return all(_has_word(text, word) for word in c["words"])


def _exclude_words(text: str, c: Mapping[str, Any]) -> bool:
    return not any(_has_word(text, word) for word in c["words"])


def _lowercase(text: str, c: Mapping[str, Any]) -> bool:
    return text == text.lower() and any(ch.isalpha() for ch in text)


def _uppercase(text: str, c: Mapping[str, Any]) -> bool:
    return text == text.upper() and any(ch.isalpha() for ch in text)


def _starts_with(text: str, c: Mapping[str, Any]) -> bool:
    return text.strip().casefold().startswith(str(c["text"]).casefold())


def _ends_with(text: str, c: Mapping[str, Any]) -> bool:
    return text.strip().casefold().endswith(str(c["text"]).casefold())


def _bullet_count(text: str, c: Mapping[str, Any]) -> bool:
    return len(_BULLET.findall(text)) == int(c["value"])


def _numbered_count(text: str, c: Mapping[str, Any]) -> bool:
    return len(_NUMBERED.findall(text)) == int(c["value"])


def _paragraphs(text: str, c: Mapping[str, Any]) -> bool:
    blocks = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    return len(blocks) == int(c["value"])


def _no_commas(text: str, c: Mapping[str, Any]) -> bool:
    return "," not in text


def _json_object(text: str, c: Mapping[str, Any]) -> bool:
    try:
        value = json.loads(_FENCE.sub("", text.strip()))
    except json.JSONDecodeError:
        return False
    return isinstance(value, dict) and all(key in value for key in c.get("keys", ()))


def _title(text: str, c: Mapping[str, Any]) -> bool:
    # At least one visible character inside, so a blanked copy of the prompt's "<<title>>" is no title.
    return re.search(r"<<[^<>\n]*[^<>\s][^<>\n]*>>", text) is not None


def _placeholders(text: str, c: Mapping[str, Any]) -> bool:
    return len(re.findall(r"\[[^\[\]\n]*[^\[\]\s][^\[\]\n]*\]", text)) >= int(c["value"])


def _keyword_frequency(text: str, c: Mapping[str, Any]) -> bool:
    found = re.findall(rf"(?<!\w){re.escape(str(c['word']))}(?!\w)", text, flags=re.IGNORECASE)
    return len(found) >= int(c["min"])


def _quoted(text: str, c: Mapping[str, Any]) -> bool:
    stripped = text.strip()
    return len(stripped) > 2 and stripped[0] in '"“' and stripped[-1] in '"”'


def _max_sentences(text: str, c: Mapping[str, Any]) -> bool:
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]
    return len(sentences) <= int(c["value"])


def _ends_with_question(text: str, c: Mapping[str, Any]) -> bool:
    return text.strip().endswith("?")


CHECKS: Mapping[str, Check] = MappingProxyType(
    {
        "max_words": _max_words,
        "min_words": _min_words,
        "include_words": _include_words,
        "exclude_words": _exclude_words,
        "lowercase": _lowercase,
        "uppercase": _uppercase,
        "starts_with": _starts_with,
        "ends_with": _ends_with,
        "bullet_count": _bullet_count,
        "numbered_count": _numbered_count,
        "paragraphs": _paragraphs,
        "no_commas": _no_commas,
        "json_object": _json_object,
        "title": _title,
        "placeholders": _placeholders,
        "keyword_frequency": _keyword_frequency,
        "quoted": _quoted,
        "max_sentences": _max_sentences,
        "ends_with_question": _ends_with_question,
    }
)


# Checks about what the answer says. The prompt names the words it requires ("Use the word salt"),
# so these read the answer with text copied from the prompt blanked out; format checks (length,
# case, exact start or end phrase) read the answer as written, since a required phrase is copied.
CONTENT_CHECKS = frozenset({"include_words", "keyword_frequency", "title", "placeholders"})


def check_all(text: str, constraints: Sequence[Mapping[str, Any]], prompt: str = "") -> list[bool]:
    """One boolean per constraint, in order; raises ``KeyError`` for an unknown type."""
    own = mask_copied(prompt, text) if prompt else text
    return [CHECKS[c["type"]](own if c["type"] in CONTENT_CHECKS else text, c) for c in constraints]
