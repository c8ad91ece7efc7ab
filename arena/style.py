"""Style features of an answer, for the style-controlled helpfulness rating.

Stored with each answer when it is written, so the leaderboard job reads four small numbers per
vote instead of the texts. Length counts whitespace-separated words: a tokenizer-free proxy that
is the same for every backend.
"""

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from arena.models import Battle, BattleAnswer, StyleCell, Verdict
from ranking.style import vote_cell

_HEADER = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_LIST_ITEM = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")


@dataclass(frozen=True)
class StyleFeatures:
    length: int
    headers: int
    lists: int
    bold: int


def style_features(text: str) -> StyleFeatures:
    return StyleFeatures(
        length=len(text.split()),
        headers=len(_HEADER.findall(text)),
        lists=len(_LIST_ITEM.findall(text)),
        bold=len(_BOLD.findall(text)),
    )


def style_cell_row(battle: Battle, verdict: Verdict, totals: Mapping[str, Sequence[int]]) -> dict[str, int | float]:
    """The increments of one counted helpfulness vote in its pair's style cell (ranking.style).

    Each side's features are summed over its turns (`totals`: {"a": (length, headers, lists, bold),
    "b": ...}): one vote covers the whole conversation. The cell keeps covariate sums (low model minus
    high), so the snapshot divides once by the cell's games.
    """
    lo, hi = battle.model_pair
    a_is_lo = battle.model_a_id == lo
    style_lo, style_hi = (totals["a"], totals["b"]) if a_is_lo else (totals["b"], totals["a"])
    joint_bin, z = vote_cell(style_lo, style_hi)
    outcomes = dict.fromkeys(_OUTCOMES, 0)
    outcomes[outcome_column(verdict, a_is_lo)] = 1
    return {"model_lo_id": lo, "model_hi_id": hi, "bin": int(joint_bin), **outcomes,
            **{name: float(value) for name, value in zip(_Z_COLUMNS, z, strict=True)}}


async def bump_style_cell(
    session: AsyncSession, battle: Battle, verdict: Verdict, totals: Mapping[str, Sequence[int]] | None = None
) -> None:
    """Counts a counted helpfulness vote in its pair's style cell, in the caller's transaction (a vote
    approved on review; the vote path itself folds the same row into its one write, arena.vote_store).
    `totals` saves a round trip when the caller has already read them; otherwise they are read here."""
    row = style_cell_row(battle, verdict, totals if totals is not None else await _side_totals(session, battle.id))
    statement = insert(StyleCell).values(**row)
    await session.execute(statement.on_conflict_do_update(
        index_elements=["model_lo_id", "model_hi_id", "bin"],
        set_={name: getattr(StyleCell, name) + statement.excluded[name] for name in (*_OUTCOMES, *_Z_COLUMNS)},
    ))


_STYLE_COLUMNS = ("style_length", "style_headers", "style_lists", "style_bold")  # ranking.style.STYLE_FEATURES
_Z_COLUMNS = ("z_length", "z_headers", "z_lists", "z_bold")
_OUTCOMES = ("lo_wins", "hi_wins", "ties", "both_bad")


def outcome_column(verdict: Verdict, a_is_lo: bool) -> str:
    """The counter a verdict bumps in a low-id-first row (pair counts and style cells alike)."""
    if verdict in (Verdict.tie, Verdict.both_bad):
        return "ties" if verdict == Verdict.tie else "both_bad"
    return "lo_wins" if (verdict == Verdict.a) == a_is_lo else "hi_wins"


async def _side_totals(session: AsyncSession, battle_id: uuid.UUID) -> dict[str, tuple[int, ...]]:
    """Each side's style features summed over the battle's turns (zeros for a side without answers)."""
    sums = [func.coalesce(func.sum(getattr(BattleAnswer, c)), 0) for c in _STYLE_COLUMNS]
    query = select(BattleAnswer.side, *sums).where(BattleAnswer.battle_id == battle_id).group_by(BattleAnswer.side)
    totals = {"a": (0,) * 4, "b": (0,) * 4}
    totals.update({row[0]: tuple(int(v) for v in row[1:]) for row in (await session.execute(query)).all()})
    return totals
