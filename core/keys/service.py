"""Creating and checking API keys. Keys look like ``libra_<prefix>_<secret>``."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import repository as audit
from core.errors import forbidden, unauthorized
from core.keys.models import ApiKey, KeyScope


@dataclass(frozen=True)
class IssuedKey:
    id: int
    name: str
    scope: KeyScope
    plaintext: str  # shown once to whoever created it, never stored


def _hash(secret: str) -> str:
    # The secret has 190+ bits of entropy, so a fast hash is enough; no salt needed.
    return hashlib.sha256(secret.encode()).hexdigest()


async def create_key(session: AsyncSession, name: str, scope: KeyScope, actor: str) -> IssuedKey:
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(24)
    key = ApiKey(name=name, prefix=prefix, secret_hash=_hash(secret), scope=scope)
    session.add(key)
    await session.flush()
    audit.record(session, actor, "key.created", f"key:{key.id}", name=name, scope=scope.value)
    return IssuedKey(key.id, name, scope, f"libra_{prefix}_{secret}")


async def authenticate(session: AsyncSession, plaintext: str | None) -> ApiKey:
    parts = (plaintext or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "libra":
        raise unauthorized()
    key = await session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None:
        raise unauthorized()
    if not hmac.compare_digest(key.secret_hash, _hash(parts[2])):
        raise unauthorized()
    return key


def require_scope(key: ApiKey, *allowed: KeyScope) -> None:
    if key.scope not in allowed:
        raise forbidden(f"this action needs a key with scope {' or '.join(s.value for s in allowed)}")
