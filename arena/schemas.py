import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena.models import AnswerStatus, BattleStatus, Verdict


def storable_text(value: str) -> str:
    """Postgres text cannot hold NUL; refusing it here gives a 422 naming the field, not a 500."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


class BattleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The length cap is a setting (413 above it), checked by the service, not here.
    prompt: str = Field(min_length=1, description="The visitor's prompt.")

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return storable_text(value)


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
