import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from arena.models import AnswerStatus, BattleStatus, Verdict


class BattleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The length cap is a setting (413 above it), checked by the service, not here.
    prompt: str = Field(min_length=1, description="The visitor's prompt.")


class AnswerOut(BaseModel):
    side: str
    status: AnswerStatus
    text: str
    error: str | None = None


class RevealedModel(BaseModel):
    slug: str
    display_name: str
    organisation: str


class BattleOut(BaseModel):
    """A battle as the visitor sees it: the names stay hidden until a vote is in."""

    id: uuid.UUID
    prompt: str
    status: BattleStatus
    created_at: datetime
    answers: list[AnswerOut]
    model_a: RevealedModel | None = None
    model_b: RevealedModel | None = None
    vote: "VoteIn | None" = None


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    helpfulness: Verdict = Field(description="Which answer helped more: a, b, tie or both_bad.")
    safety: Verdict | None = Field(default=None, description="Which answer was safer, if judged.")
