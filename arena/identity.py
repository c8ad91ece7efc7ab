"""Does an answer name the model that wrote it? Checked when the answer is stored.

A vote on a battle whose answer gave its model away is not a blind comparison, so it is kept out
of the ratings (and counted). Only self-identification counts, never a mention: "I'm SmolLM",
"SmolLM here", "As Gemma, ...", "I was trained by Google", or the generic "I am <Name>, a model
trained by <Org>". An answer about Gemma, or saying that Google trained Gemma, is not a leak.
The phrase lists are data: a change of them is a change of IDENTITY_RULES_VERSION.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

IDENTITY_RULES_VERSION = "identity-1"

# A key found in a model's slug or display name (lower case) -> the family names it answers to.
FAMILY_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "smollm": ("SmolLM", "SmolLM2", "SmolLM3"),
    "gemma": ("Gemma",),
    "llama": ("Llama", "LLaMA"),
    "qwen": ("Qwen", "Tongyi Qianwen"),
    "mistral": ("Mistral", "Mixtral"),
    "phi-": ("Phi",),
    "gpt": ("GPT", "ChatGPT"),
    "claude": ("Claude",),
    "deepseek": ("DeepSeek",),
    "olmo": ("OLMo",),
})

# A key found in a model's organisation (lower case) -> the names that organisation goes by.
ORGANISATION_NAMES: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "hugging face": ("Hugging Face", "HuggingFace"),
    "google": ("Google", "Google DeepMind", "DeepMind"),
    "meta": ("Meta", "Meta AI", "Facebook"),
    "alibaba": ("Alibaba", "Alibaba Cloud", "Qwen Team"),
    "mistral": ("Mistral AI",),
    "microsoft": ("Microsoft",),
    "openai": ("OpenAI",),
    "anthropic": ("Anthropic",),
    "deepseek": ("DeepSeek",),
    "allen": ("Allen Institute for AI", "AI2"),
})

_I_AM = r"(?:I\s+am|I'm|I’m|my\s+name\s+is|call\s+me)"
_MADE = r"(?:trained|developed|made|created|built|designed|fine-tuned)"
# Up to five words between "I am a" and "trained by", none of them a verb that starts a new
# clause: "I'm a small model trained by X" counts, "I'm not sure, but Gemma was trained by X" not.
_FILLER = r"(?:(?!(?:was|is|were|are|has|had)\b)[\w-]+\s+){0,5}?"
# "I am <Name>, a/an/the ... trained by <Org>": any name and organisation, both capitalised.
_GENERIC_CLAIM = re.compile(
    rf"\b{_I_AM}\s+(?P<name>[A-Z][\w.-]*(?:\s+[A-Z0-9][\w.-]*){{0,2}}),?\s+(?:an?|the|your)\s+"
    rf"{_FILLER}{_MADE}\s+by\s+(?:the\s+)?(?:team\s+at\s+)?[A-Z][\w.-]*"
)


@dataclass(frozen=True)
class IdentityRules:
    """The compiled patterns for one model; built once per battle side."""

    patterns: tuple[re.Pattern[str], ...]


@dataclass(frozen=True)
class IdentityLeak:
    matched: str  # the answer's own words, kept server-side only


def _looks_like_a_name(candidate: str) -> bool:
    """Plain lower-case words ("one", "test") would match ordinary speech: only proper names count."""
    return len(candidate) >= 3 and not (candidate.isalpha() and candidate.islower())


def _names(slug: str, display_name: str) -> set[str]:
    lowered = f"{slug} {display_name}".lower()
    names = {n for key, family in FAMILY_NAMES.items() if key in lowered for n in family}
    first_word = display_name.split(maxsplit=1)[0] if display_name.strip() else ""
    names |= {n for n in (slug, display_name.strip(), first_word) if _looks_like_a_name(n)}
    return names


def _organisations(organisation: str) -> set[str]:
    own = organisation.split("(", 1)[0].strip()  # "Hugging Face (prompt by Libra Arena)" -> "Hugging Face"
    lowered = organisation.lower()
    names = {n for key, known in ORGANISATION_NAMES.items() if key in lowered for n in known}
    return names | ({own} if _looks_like_a_name(own) else set())


def _alternation(names: set[str]) -> str:
    # Longest first, so "SmolLM2" wins over "SmolLM"; a trailing \b keeps "Gemmas" from matching "Gemma".
    return "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))


def rules_for(slug: str, display_name: str, organisation: str) -> IdentityRules:
    patterns: list[re.Pattern[str]] = [_GENERIC_CLAIM]
    names, orgs = _names(slug, display_name), _organisations(organisation)
    if names:
        name = rf"(?:{_alternation(names)})\b"
        patterns += [
            re.compile(rf"\b{_I_AM}\s+(?:called\s+)?(?:an?\s+|the\s+)?{name}", re.IGNORECASE),
            re.compile(rf"(?:^|[.!?]\s+|\n)\s*{name}\s+here\b", re.IGNORECASE),
            re.compile(rf"\bas\s+(?:an?\s+)?{name}(?:\s+(?:model|assistant|AI))?,", re.IGNORECASE),
        ]
    if orgs:
        org = rf"(?:the\s+)?(?:team\s+at\s+)?(?:{_alternation(orgs)})\b"
        patterns += [
            # First person only: "I was trained by Google", "I'm a model developed by Hugging Face".
            re.compile(rf"\b(?:I\s+(?:am|was|have\s+been)|I'm|I’m)\s+(?:(?:an?|the)\s+{_FILLER})?{_MADE}\s+by\s+{org}",
                       re.IGNORECASE),
            re.compile(rf"\bmy\s+(?:creators?|developers?|makers?)\s+(?:is|are|was|were|at)\s+{org}",
                       re.IGNORECASE),
        ]
    return IdentityRules(patterns=tuple(patterns))


def find_leak(text: str, rules: IdentityRules) -> IdentityLeak | None:
    for pattern in rules.patterns:
        if match := pattern.search(text):
            return IdentityLeak(matched=match.group(0)[:200])
    return None
