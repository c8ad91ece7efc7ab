"""Which two models meet: drawn from the active models with recorded seeds, so a draw replays.

(Issue 11, item 5 replaces the uniform draw with maintainer weights, a new-model boost and active
pairing; `draw` keeps this signature.)
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings


@dataclass(frozen=True)
class Draw:
    model_a: Contestant
    model_b: Contestant
    # Stored in battles.pairing: with battles.sampling_seed, enough to replay the draw.
    record: dict[str, Any] = field(default_factory=dict)


def draw_pair(ids: Sequence[int], rng: np.random.Generator) -> tuple[int, int]:
    """Two distinct contestants, uniformly; the order decides which is side A."""
    if len(ids) < 2:
        raise LibraError("the arena needs at least two active models", status=503, code="no_pair")
    first, second = rng.choice(len(ids), size=2, replace=False)
    return ids[int(first)], ids[int(second)]


async def draw(session: AsyncSession, rng: np.random.Generator, settings: Settings | None = None) -> Draw:
    active = await registry.list_all(session, ContestantStatus.active)
    models = {m.id: m for m in active}
    a_id, b_id = draw_pair([m.id for m in active], rng)
    return Draw(models[a_id], models[b_id], {"policy": "uniform"})
