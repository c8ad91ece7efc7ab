"""Where a battle's first prompt comes from: the visitor's words, the curated pool, or an attack.

An attack's choices (persona, split point, examples) come from a generator seeded by `attack_seed`,
so a preview and the battle that follows it send the very same text.
"""

import secrets
from dataclasses import dataclass

import numpy as np

from arena import pool
from arena.models import PromptSource
from arena.prompt_schemas import PreviewIn, PreviewOut
from arena.schemas import BattleIn
from core.errors import LibraError
from core.settings import Settings
from evaluation import attacks

SEED_BOUND = 2**31


@dataclass(frozen=True)
class ResolvedPrompt:
    text: str  # what the models are sent
    source: PromptSource
    attack: str | None = None
    pool_item: str | None = None
    attack_seed: int | None = None  # with `attack`, replays the text (stored in battles.attack_seed)


def resolve(request: BattleIn, rng: np.random.Generator, settings: Settings | None = None) -> ResolvedPrompt:
    """The text to send, checked; an attack transform draws its choices from `request.attack_seed` when the
    visitor previewed the text, else from a seed drawn from `rng` (the battle's).

    Without `settings` (the caller has checked the visitor's prompt length) they are read from the
    environment, and only for a pool item or an attack: reading them costs milliseconds.
    """
    if request.pool_item is not None:
        settings = settings if settings is not None else Settings()
        item = pool.pool_for(settings).get(request.pool_item)
        check_length(item.text, settings.max_prompt_chars, "pool_item")
        return ResolvedPrompt(item.text, PromptSource.pool, pool_item=item.id)
    assert request.prompt is not None  # BattleIn requires a prompt without a pool item
    if request.attack is None:
        if request.attack_seed is not None:
            raise LibraError("attack_seed goes with an attack", status=422, code="invalid_request",
                             field="attack_seed")
        if settings is not None:
            check_length(request.prompt, settings.max_prompt_chars, "prompt")
        return ResolvedPrompt(request.prompt, PromptSource.free)
    max_chars = (settings if settings is not None else Settings()).max_prompt_chars
    seed = request.attack_seed if request.attack_seed is not None else int(rng.integers(SEED_BOUND))
    text = transform(request.prompt, request.attack, seed, max_chars)
    return ResolvedPrompt(text, PromptSource.attack, attack=request.attack, attack_seed=seed)


def preview(request: PreviewIn, max_chars: int) -> PreviewOut:
    """What a battle with this prompt, attack and the returned seed will send."""
    seed = request.attack_seed if request.attack_seed is not None else secrets.randbelow(SEED_BOUND)
    return PreviewOut(prompt=transform(request.prompt, request.attack, seed, max_chars), attack=request.attack,
                      attack_seed=seed)


def transform(prompt: str, attack: str, seed: int, max_chars: int) -> str:
    """The attacked text; the visitor's prompt and the rewritten one both stay within the limit (413)."""
    check_attack(attack)
    check_length(prompt, max_chars, "prompt")
    text = attacks.apply(attack, prompt, np.random.default_rng(seed))
    if len(text) > max_chars:
        raise LibraError(f"with the {attack} attack the prompt has {len(text)} characters; the limit is "
                         f"{max_chars}", status=413, code="prompt_too_long", field="prompt")
    return text


def check_attack(attack: str) -> None:
    known = [a.name for a in attacks.list_attacks()]
    if attack not in known:
        raise LibraError(f"unknown attack {attack!r}; one of: {', '.join(known)}", status=422,
                         code="invalid_request", field="attack")


def check_length(text: str, max_chars: int, field: str) -> None:
    if len(text) > max_chars:
        raise LibraError(f"the prompt has {len(text)} characters; the limit is {max_chars}", status=413,
                         code="prompt_too_long", field=field)
