from datetime import datetime

from pydantic import BaseModel, ConfigDict

from core.keys.models import KeyScope


class KeyOut(BaseModel):
    """What admins see of a key: never its hash, never its secret (the prefix is the public part)."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    prefix: str
    scope: KeyScope
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
