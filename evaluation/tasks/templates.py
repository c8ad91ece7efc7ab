"""Prompt templates: turn an item into the conversation a model sees."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from evaluation import attacks
from evaluation.hashing import content_hash
from evaluation.types import Item


@dataclass(frozen=True)
class PromptTemplate:
    """``user`` and ``system`` use ``str.format`` fields filled from the item's fields.

    ``attack`` names a transform from :mod:`evaluation.attacks`, applied to the rendered user
    turn; the system prompt is never attacked, because the attacker only controls user turns.
    """

    user: str
    system: str | None = None
    attack: str | None = None

    def __post_init__(self) -> None:
        if self.attack is not None:
            known = {info.name for info in attacks.list_attacks()}
            if self.attack not in known:
                raise ValueError(f"unknown attack {self.attack!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> PromptTemplate:
        return cls(user=str(raw["user"]), system=raw.get("system"), attack=raw.get("attack"))

    @property
    def version(self) -> str:
        return content_hash({"user": self.user, "system": self.system, "attack": self.attack})

    def render(self, item: Item, rng: np.random.Generator) -> list[dict[str, str]]:
        """The conversation for ``item``; ``rng`` feeds the attack transform's choices."""
        user = self.user.format_map(item.fields)
        if self.attack is not None:
            user = attacks.apply(self.attack, user, rng)
        messages = [{"role": "user", "content": user}]
        if self.system:
            messages.insert(0, {"role": "system", "content": self.system.format_map(item.fields)})
        return messages

    def user_prompt(self, item: Item) -> str:
        """The un-attacked request, which is what a refusal judge should judge against.

        An item whose prompt is itself a wrapping from a dataset (an in-the-wild jailbreak around a
        HarmBench request) names the request it wraps in ``meta.request``.
        """
        if "request" in item.meta:
            return str(item.meta["request"])
        return self.user.format_map(item.fields)
