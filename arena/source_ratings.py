"""Arena ratings restricted to one prompt source: free prompts, pool prompts or attacked prompts.

The vote path counts every counted vote twice: under its dimension ("helpfulness") and under the
dimension tagged with the battle's prompt source ("helpfulness@attack"). A fit reads one of those
count tables: models² numbers, so it runs in the request, and its result is cached per counts.
"""

import functools
import math
from collections.abc import Sequence

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession

import ranking
from arena import repository as arena_repo
from arena.models import PairCount, PromptSource
from arena.prompt_schemas import ModelRatingOut, SourceRatingsOut
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus

DIMENSIONS = ("helpfulness", "safety")
# Retired models stay: their games keep holding the others' ratings in place (as on the leaderboard).
SHOWN = (ContestantStatus.active, ContestantStatus.retired)
LEVEL = 0.95

Record = tuple[str, str, int, int, int]


def source_dimension(dimension: str, source: PromptSource | None) -> str:
    """The pair_counts dimension that holds `dimension`'s votes on battles of `source` (None: all battles)."""
    return dimension if source is None else f"{dimension}@{source.value}"


async def ratings(session: AsyncSession, dimension: str, source: PromptSource | None) -> SourceRatingsOut:
    models = [m for m in await registry.list_all(session) if m.status in SHOWN]
    rows = await arena_repo.pair_counts(session, source_dimension(dimension, source))
    records = _records(models, rows)
    fitted = _fit(tuple(m.slug for m in models), records)
    names = {m.slug: m.display_name for m in models}
    out = [ModelRatingOut(slug=slug, display_name=names[slug], rating=r, lower=lo, upper=hi, games=g)
           for slug, r, lo, hi, g in fitted]
    out.sort(key=lambda m: (m.rating is None, -(m.rating or 0.0), m.slug))
    votes = sum(r[2] + r[3] + r[4] for r in records)
    return SourceRatingsOut(dimension=dimension, source=source.value if source else None, votes=votes,
                            level=LEVEL, models=out)


def _records(models: Sequence[Contestant], rows: Sequence[PairCount]) -> tuple[Record, ...]:
    """Both-bad counts as a tie, as in the leaderboard's fit; pairs with a model not shown are left out."""
    slug = {m.id: m.slug for m in models}
    return tuple(sorted((slug[r.model_lo_id], slug[r.model_hi_id], r.lo_wins, r.hi_wins, r.ties + r.both_bad)
                        for r in rows if r.model_lo_id in slug and r.model_hi_id in slug))


@functools.lru_cache(maxsize=64)
def _fit(models: tuple[str, ...], records: tuple[Record, ...]) -> tuple[tuple[str, float | None, float | None,
                                                                             float | None, int], ...]:
    """(slug, rating, lower, upper, games) per model; pure in the counts, hence cached on them."""
    if not models:
        return ()
    counts = ranking.PairCounts.from_records(list(models), records)
    games = counts.games.sum(axis=1)
    if not records:
        return tuple((slug, None, None, None, 0) for slug in models)
    fit = ranking.fit_bradley_terry(counts)
    if not fit.rated.any():
        return tuple((slug, None, None, None, int(g)) for slug, g in zip(models, games, strict=True))
    bounds = ranking.fisher_intervals(counts, fit, LEVEL)
    return tuple((slug, _num(fit.ratings[i]), _num(bounds.lower[i]), _num(bounds.upper[i]), int(games[i]))
                 for i, slug in enumerate(models))


def _num(value: float | np.floating) -> float | None:
    return None if math.isnan(float(value)) else round(float(value), 2)
