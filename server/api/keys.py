"""Admins list and revoke API keys. Hashes and secrets never leave the database."""

from fastapi import APIRouter

from core.keys.schemas import KeyOut
from core.keys.service import list_keys, revoke_key
from server.deps import AdminDep, SessionDep

router = APIRouter(prefix="/admin/keys", tags=["keys"])


@router.get("")
async def list_all(session: SessionDep, key: AdminDep) -> list[KeyOut]:
    return [KeyOut.model_validate(k) for k in await list_keys(session)]


@router.post("/{key_id}/revoke")
async def revoke(key_id: int, session: SessionDep, key: AdminDep) -> KeyOut:
    """Revoked at once: the key gets 401 from its next request on (409 if it already was)."""
    return KeyOut.model_validate(await revoke_key(session, key_id, f"key:{key.id}"))
