"""Creating and checking API keys. Keys look like ``libra_<prefix>_<secret>``."""

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit import repository as audit
from core.db import utcnow
from core.errors import LibraError, conflict, forbidden, not_found, unauthorized
from core.keys import repository
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


async def create_key(
    session: AsyncSession, name: str, scope: KeyScope, actor: str, expires_in_days: int | None = None
) -> IssuedKey:
    if expires_in_days is not None and expires_in_days < 1:
        raise LibraError("expires_in_days must be at least 1", status=422, code="invalid_request",
                         field="expires_in_days")
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(24)
    expires_at = utcnow() + timedelta(days=expires_in_days) if expires_in_days else None
    key = ApiKey(name=name, prefix=prefix, secret_hash=_hash(secret), scope=scope, expires_at=expires_at)
    session.add(key)
    await session.flush()
    audit.record(session, actor, "key.created", f"key:{key.id}", name=name, scope=scope.value,
                 expires_at=expires_at.isoformat() if expires_at else None)
    return IssuedKey(key.id, name, scope, f"libra_{prefix}_{secret}")


async def authenticate(session: AsyncSession, plaintext: str | None) -> ApiKey:
    """The key, if it exists, matches, is not revoked and has not expired; checked on every request,
    so a revocation takes effect at the next one."""
    parts = (plaintext or "").split("_", 2)
    if len(parts) != 3 or parts[0] != "libra":
        raise unauthorized()
    key = await repository.by_prefix(session, parts[1])
    if key is None or not hmac.compare_digest(key.secret_hash, _hash(parts[2])):
        raise unauthorized()
    if key.revoked_at is not None:
        raise unauthorized("this API key has been revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise unauthorized("this API key has expired")
    return key


async def record_use(session: AsyncSession, key: ApiKey, method: str, path: str) -> None:
    """Notes when a key was last used; every use of an admin key is also audited."""
    await repository.touch(session, key.id)
    if key.scope is KeyScope.admin:
        audit.record(session, f"key:{key.id}", "key.used", f"key:{key.id}", method=method, path=path)


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return await repository.list_all(session)


async def revoke_key(session: AsyncSession, key_id: int, actor: str) -> ApiKey:
    key = await repository.by_id(session, key_id)
    if key is None:
        raise not_found("key", key_id)
    if key.revoked_at is not None:
        raise conflict(f"key {key_id} is already revoked")
    key.revoked_at = utcnow()
    audit.record(session, actor, "key.revoked", f"key:{key.id}", name=key.name, scope=key.scope.value)
    await session.flush()
    return key


def require_scope(key: ApiKey, *allowed: KeyScope) -> None:
    if key.scope not in allowed:
        raise forbidden(f"this action needs a key with scope {' or '.join(s.value for s in allowed)}")
