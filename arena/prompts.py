"""Where a battle's first prompt comes from: the visitor's words, the curated pool, or an attack.

(Issue 11, item 4 fills in the pool and the checks; `resolve` keeps this signature.)
"""

from dataclasses import dataclass

import numpy as np

from arena.models import PromptSource
from arena.schemas import BattleIn
from core.errors import LibraError
from evaluation import attacks


@dataclass(frozen=True)
class ResolvedPrompt:
    text: str  # what the models are sent
    source: PromptSource
    attack: str | None = None
    pool_item: str | None = None


def resolve(request: BattleIn, rng: np.random.Generator) -> ResolvedPrompt:
    """The text to send, checked; an attack transform draws its choices from `rng` (the battle's seed),
    or from `request.attack_seed` when the visitor previewed the text."""
    prompt, attack, pool_item = request.prompt, request.attack, request.pool_item
    if pool_item is not None:
        raise LibraError("the prompt pool is not available yet", status=404, code="unknown_pool_item",
                         field="pool_item")
    assert prompt is not None  # BattleIn requires a prompt without a pool item
    if attack is None:
        return ResolvedPrompt(prompt, PromptSource.free)
    if attack not in {a.name for a in attacks.list_attacks()}:
        raise LibraError(f"unknown attack {attack!r}", status=422, code="invalid_request", field="attack")
    return ResolvedPrompt(attacks.apply(attack, prompt, rng), PromptSource.attack, attack=attack)
