import unicodedata
import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from arena.models import AnswerStatus, BattleStatus, Verdict
from evaluation.tasks.taxonomy import HARM_CATEGORIES

MAX_REASON_CHARS = 500


def storable_text(value: str) -> str:
    """Postgres text cannot hold NUL, nor UTF-8 a lone surrogate; a 422 naming the field, not a 500."""
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    if any("\ud800" <= c <= "\udfff" for c in value):
        raise ValueError("must not contain a lone surrogate (not valid Unicode text)")
    return value


def visitor_prompt(value: str) -> str:
    """A visitor's prompt (a battle's, a turn's, an attack preview's): not blank, storable."""
    if not value.strip():
        raise ValueError("must not be blank")
    return storable_text(value)


class BattleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The length cap is a setting (413 above it), checked by the service, not here.
    prompt: str | None = Field(default=None, min_length=1, description="The visitor's prompt (or a pool item).")
    attack: str | None = Field(
        default=None, description="Attack mode: an attack transform (GET /arena/attacks) that rewrites the prompt."
    )
    attack_seed: int | None = Field(
        default=None, ge=0, lt=2**31,
        description="The seed a preview returned (POST /arena/attacks/preview): the battle then sends that exact text.",
    )
    pool_item: str | None = Field(
        default=None, description='"Surprise me": a prompt of the curated pool (GET /arena/surprise), sent as is.'
    )
    stream: bool = Field(
        default=False,
        description="Answer at once (201, status 'generating') and follow GET /battles/{id}/stream; "
        "false waits for both answers.",
    )

    @field_validator("prompt")
    @classmethod
    def _prompt(cls, value: str | None) -> str | None:
        return None if value is None else visitor_prompt(value)

    @model_validator(mode="after")
    def _one_source(self) -> "BattleIn":
        if (self.prompt is None) == (self.pool_item is None):
            raise ValueError("send either a prompt or a pool_item")
        if self.attack is not None and self.prompt is None:
            raise ValueError("an attack rewrites your own prompt: send a prompt with it")
        return self


class TurnIn(BaseModel):
    """Another prompt in the same battle; each side answers it seeing its own earlier answers."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The visitor's next prompt.")
    stream: bool = Field(default=False, description="As for POST /battles: answer at once and stream.")

    _prompt = field_validator("prompt")(visitor_prompt)


class RegenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stream: bool = Field(default=False, description="As for POST /battles: answer at once and stream.")


class AnswerOut(BaseModel):
    side: str
    status: AnswerStatus
    text: str
    error: str | None = None


class RevealedModel(BaseModel):
    slug: str
    display_name: str
    organisation: str


class TurnOut(BaseModel):
    turn: int
    prompt: str
    answers: list[AnswerOut]  # empty while the turn is generating


class BattleOut(BaseModel):
    """A battle as the visitor sees it: the names stay hidden until a vote is in.

    ``prompt`` is the first turn's and ``answers`` the latest turn's (as before turns existed);
    ``turns`` holds the whole conversation.
    """

    id: uuid.UUID
    prompt: str
    status: BattleStatus
    created_at: datetime
    answers: list[AnswerOut]
    turns: list[TurnOut] = Field(default_factory=list)
    model_a: RevealedModel | None = None
    model_b: RevealedModel | None = None
    vote: "VoteIn | None" = None
    # After the vote only: False when the vote stays out of the ratings, and why (e.g. "identity_leak").
    vote_counted: bool | None = None
    vote_excluded_reason: str | None = None


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    helpfulness: Verdict = Field(description="Which answer helped more: a, b, tie or both_bad.")
    safety: Verdict | None = Field(default=None, description="Which answer was safer, if judged.")
    harm_category: str | None = Field(
        default=None, description="The harm at stake, if any: a PKU-SafeRLHF category slug (GET /battles/harm-categories)."
    )
    reason: str | None = Field(default=None, description=f"Why, in at most {MAX_REASON_CHARS} characters.")
    reason_public: bool = Field(default=False, description="Whether the reason may be published in exports.")

    @field_validator("harm_category")
    @classmethod
    def _harm_category(cls, value: str | None) -> str | None:
        if value is not None and value not in HARM_CATEGORIES:
            raise ValueError(f"unknown harm category; one of: {', '.join(HARM_CATEGORIES)}")
        return value

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = storable_text(value)
        if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in value):
            raise ValueError("must not contain control characters")
        value = value.strip()
        if len(value) > MAX_REASON_CHARS:
            raise ValueError(f"must be at most {MAX_REASON_CHARS} characters")
        return value or None  # a blank reason is no reason
