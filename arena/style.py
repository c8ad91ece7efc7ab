"""Style features of an answer, for the style-controlled helpfulness rating.

Stored with each answer when it is written, so the leaderboard job reads four small numbers per
vote instead of the texts. Length counts whitespace-separated words: a tokenizer-free proxy that
is the same for every backend.
"""

import re
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from arena.models import Battle, Verdict

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


async def bump_style_cell(session: AsyncSession, battle: Battle, verdict: Verdict) -> None:
    """Counts a counted helpfulness vote in its pair's style cell (ranking.style), in the vote's transaction.

    (Issue 11, item 11 fills this in; the vote path already calls it.)
    """
    return
