"""A model's arena record: its counted votes against each opponent and per prompt source, per axis.

It reads `pair_counts`, which holds counted votes only (a vote held for review enters it once
approved), so the record agrees with the ratings. The table grows with models², never with votes:
a model's rows are at most (models - 1) x 8 dimensions.
"""

from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from arena.models import PromptSource
from arena.record_schemas import ArenaRecordOut, OpponentRecordOut, SourceRecordOut, TallyOut
from core.registry.models import Contestant
from ranking.proportions import WILSON, wilson_interval

AXES = ("helpfulness", "safety")
NOTE = ("Counted votes only: votes held for review count once approved, excluded ones never. A tie and a "
        "both-bad vote are shown but not part of the win rate.")

# The model's rows, turned to its side: its wins, its losses, with the opponent's names.
_ROWS = text("""
SELECT p.dimension, o.slug, o.display_name,
       CASE WHEN p.model_lo_id = :model THEN p.lo_wins ELSE p.hi_wins END AS wins,
       CASE WHEN p.model_lo_id = :model THEN p.hi_wins ELSE p.lo_wins END AS losses,
       p.ties, p.both_bad
  FROM pair_counts p
  JOIN models o ON o.id = CASE WHEN p.model_lo_id = :model THEN p.model_hi_id ELSE p.model_lo_id END
 WHERE :model IN (p.model_lo_id, p.model_hi_id)
""")


async def arena_record(session: AsyncSession, model: Contestant) -> ArenaRecordOut:
    rows = (await session.execute(_ROWS, {"model": model.id})).all()
    return record(model.slug, rows)


def record(slug: str, rows: Iterable[Any]) -> ArenaRecordOut:
    """Rows (dimension, slug, display_name, wins, losses, ties, both_bad) -> the record."""
    by_opponent: dict[str, dict[str, list[int]]] = {}
    by_source: dict[str, dict[str, list[int]]] = {}
    names: dict[str, str] = {}
    for row in rows:
        axis, _, source = row.dimension.partition("@")
        if axis not in AXES:
            continue
        counts = [int(row.wins), int(row.losses), int(row.ties), int(row.both_bad)]
        if source:
            _add(by_source.setdefault(source, {}), axis, counts)
        else:
            names[row.slug] = row.display_name
            _add(by_opponent.setdefault(row.slug, {}), axis, counts)
    totals: dict[str, list[int]] = {}
    for tallies in by_opponent.values():
        for axis, counts in tallies.items():
            _add(totals, axis, counts)
    opponents = [OpponentRecordOut(slug=s, display_name=names[s], **_axes(t)) for s, t in by_opponent.items()]
    opponents.sort(key=lambda o: (-(o.helpfulness.votes + o.safety.votes), o.slug))
    sources = [SourceRecordOut(source=s.value, **_axes(by_source[s.value])) for s in PromptSource
               if s.value in by_source]
    return ArenaRecordOut(model=slug, interval_method=WILSON, totals=_axes(totals), opponents=opponents,
                          by_source=sources, note=NOTE)


def _add(into: dict[str, list[int]], axis: str, counts: list[int]) -> None:
    into[axis] = [a + b for a, b in zip(into.get(axis, [0, 0, 0, 0]), counts, strict=True)]


def _axes(tallies: dict[str, list[int]]) -> dict[str, TallyOut]:
    return {axis: tally(*tallies.get(axis, [0, 0, 0, 0])) for axis in AXES}


def tally(wins: int, losses: int, ties: int, both_bad: int) -> TallyOut:
    share = wilson_interval(wins, wins + losses)
    return TallyOut(votes=wins + losses + ties + both_bad, wins=wins, losses=losses, ties=ties, both_bad=both_bad,
                    win_rate=share.value, lower=share.lower, upper=share.upper)
