"""The vote (one per battle, by the session that started it) and what became of a vote sent with a key."""

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path

from arena import votes
from arena.schemas import BattleOut, VoteIn
from server.deps import RuntimeDep
from server.voters import VoterDep

router = APIRouter(tags=["arena"])

# Visible ASCII and spaces: what an HTTP header carries safely; a UUID is the usual choice.
KEY_PATTERN = r"^[\x20-\x7e]*[\x21-\x7e][\x20-\x7e]*$"
KeyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=80, pattern=KEY_PATTERN,
    description="A key of your choosing (1-80 printable ASCII characters), new for each vote: a retry with the "
                "same key returns the stored vote's answer instead of voting twice.")]


@router.post("/battles/{battle_id}/vote")
async def vote(battle_id: uuid.UUID, vote: VoteIn, runtime: RuntimeDep, voter: VoterDep,
               idempotency_key: KeyHeader = None) -> BattleOut:
    """One vote per battle, by the session that started it (403 otherwise); a second vote gets 409, a
    vote after the vote window 409, too many votes 429. The answer reveals both models."""
    return await votes.record_vote(runtime.sessions, battle_id, vote, voter, key=idempotency_key,
                                   settings=runtime.settings)


@router.get("/votes/{idempotency_key}")
async def find_vote(idempotency_key: Annotated[str, Path(min_length=1, max_length=80, pattern=KEY_PATTERN)],
                    runtime: RuntimeDep, voter: VoterDep) -> votes.VoteReceipt:
    """Whether a vote sent with this Idempotency-Key was stored, and on which battle (only for the session
    that sent it; 404 when no vote was stored under the key)."""
    return await votes.find_vote(runtime.sessions, idempotency_key, voter)
