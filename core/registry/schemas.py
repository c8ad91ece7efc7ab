from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from core.registry.models import ContestantStatus

SLUG_PATTERN = r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$"


class ContestantOut(BaseModel):
    """The public view of a contestant: no backend parameters, which may name private hosts."""

    model_config = ConfigDict(from_attributes=True)

    slug: str
    display_name: str
    organisation: str
    description: str
    backend_kind: str
    status: ContestantStatus
    created_at: datetime
    retired_at: datetime | None


class ContestantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: str = Field(pattern=SLUG_PATTERN, description="Public name: lowercase letters, digits, dashes.")
    display_name: str = Field(min_length=1, max_length=120)
    organisation: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    config: dict[str, Any] = Field(
        description="Backend kind and parameters; see docs/inference.md. A submitter key may give only an `openai` "
                    "endpoint on a public https URL, its key as `api_key` (stored encrypted, never shown; "
                    "docs/security.md).",
    )

    @field_validator("display_name", "organisation", "description", "config")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Postgres text and jsonb cannot hold NUL: a 422 naming the field instead of a 500.
        pending = [value]
        while pending:
            item = pending.pop()
            if isinstance(item, str) and "\x00" in item:
                raise ValueError("must not contain a NUL character (\\u0000)")
            if isinstance(item, dict):
                pending.extend([*item.keys(), *item.values()])
            elif isinstance(item, list):
                pending.extend(item)
        return value


class ContestantUpdate(BaseModel):
    """What the owner of a submitted model may change; a field left out keeps its value."""

    model_config = ConfigDict(extra="forbid")

    display_name: str | None = Field(default=None, min_length=1, max_length=120)
    organisation: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    config: dict[str, Any] | None = Field(
        default=None, description="A new backend config, validated as at registration (`ContestantIn.config`).",
    )

    _storable = field_validator("display_name", "organisation", "description", "config")(
        ContestantIn._storable.__func__  # type: ignore[attr-defined]
    )
