from datetime import datetime
from typing import Any

from pydantic import BaseModel


class LeaderboardOut(BaseModel):
    """The latest snapshot. `version` is null until the first snapshot job has run."""

    version: int | None
    created_at: datetime | None
    trigger: str | None
    models: list[dict[str, Any]]
    config: dict[str, Any]
