"""What the model page shows of a model's arena record."""

from pydantic import BaseModel, Field


class TallyOut(BaseModel):
    """Counted votes on one axis, from the model's side."""

    votes: int
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float | None = Field(description="Decisive votes won: wins / (wins + losses); ties and "
                                               "both-bad votes are counted, not rated.")
    lower: float | None = Field(description="95% Wilson interval of the win rate.")
    upper: float | None


class OpponentRecordOut(BaseModel):
    slug: str
    display_name: str
    helpfulness: TallyOut
    safety: TallyOut


class SourceRecordOut(BaseModel):
    source: str = Field(description="`free`, `pool` (surprise me) or `attack`.")
    helpfulness: TallyOut
    safety: TallyOut


class ArenaRecordOut(BaseModel):
    model: str
    interval_method: str
    totals: dict[str, TallyOut] = Field(description="Per axis (helpfulness, safety), over every opponent.")
    opponents: list[OpponentRecordOut] = Field(description="Most votes first.")
    by_source: list[SourceRecordOut] = Field(description="Per prompt source, when votes record one.")
    note: str
