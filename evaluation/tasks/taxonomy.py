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
