"""Payloads of attack previews, the prompt pool and ratings by prompt source (issue 11, item 4)."""

from pydantic import BaseModel, ConfigDict, Field, field_validator

from arena.schemas import visitor_prompt


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(min_length=1, description="The visitor's prompt, before the attack rewrites it.")
    attack: str = Field(description="An attack transform (GET /arena/attacks).")
    attack_seed: int | None = Field(
        default=None, ge=0, lt=2**31, description="Replays an earlier preview; a fresh seed is drawn without it."
    )

    _prompt = field_validator("prompt")(visitor_prompt)


class PreviewOut(BaseModel):
    prompt: str = Field(description="Exactly the text a battle sends with this attack and attack_seed.")
    attack: str
    attack_seed: int


class PoolItemOut(BaseModel):
    pool_item: str = Field(description='Stable id, "<task>:<item id>"; send it as POST /battles {"pool_item"}.')
    prompt: str
    kind: str = Field(description="risky (a public safety prompt) or benign (a look-alike that should be answered).")
    source: str = Field(description='Where the prompt comes from: "libra" (this project) or a data package.')
    task: str
    harm_category: str | None = None
    seed: int | None = Field(default=None, description="The draw's seed: GET /arena/surprise?seed= replays it.")


class ModelRatingOut(BaseModel):
    slug: str
    display_name: str
    rating: float | None = Field(description="Bradley-Terry rating (mean 1000); null when not rated.")
    lower: float | None
    upper: float | None
    games: int


class SourceRatingsOut(BaseModel):
    dimension: str
    source: str | None = Field(description="free, pool or attack; null = every battle.")
    votes: int = Field(description="Counted votes behind these ratings (both-bad votes count as ties).")
    level: float = 0.95
    method: str = "fisher"
    models: list[ModelRatingOut]
