"""Helpers of the vote-integrity and vote-path tests: clients with their own session and address on one
app (the real service on the embedded Postgres), battles, and what the database stored."""

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from sqlalchemy import select, text

from arena.models import Battle, PairCount, Vote, VoteFlag
from core.db import transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.settings import Settings
from server.seed import seed_defaults

BASE = "/api/v1"
# Reading is off unless a test turns it on: votes come at once after the answers in these tests.
FAST_READERS = {"arena_read_words_per_s": 1e9}


def vote_settings(**overrides: object) -> Settings:
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, **{**FAST_READERS, **overrides})


@asynccontextmanager
async def visitor(runtime, address: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    """A browser of its own: its own session cookie, from ``address``."""
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=(address, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def seed(runtime) -> None:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


async def admin_headers(runtime) -> dict[str, str]:
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "reviewer", KeyScope.admin, actor="test")
    return {"Authorization": f"Bearer {issued.plaintext}"}


async def battle(http: httpx.AsyncClient) -> str:
    created = await http.post(f"{BASE}/battles", json={"prompt": "How do plants make food?"})
    assert created.status_code == 201 and created.json()["status"] == "ready", created.text
    return created.json()["id"]


async def vote(http: httpx.AsyncClient, battle_id: str, key: str | None = None, **verdicts: str) -> httpx.Response:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return await http.post(f"{BASE}/battles/{battle_id}/vote", json=verdicts or {"helpfulness": "a"},
                           headers=headers)


async def stored_votes(runtime) -> list[Vote]:
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(Vote).order_by(Vote.id)))


async def flags(runtime) -> list[VoteFlag]:
    async with transaction(runtime.sessions) as session:
        return list(await session.scalars(select(VoteFlag).order_by(VoteFlag.id)))


async def counted(runtime, dimension: str = "helpfulness") -> int:
    async with transaction(runtime.sessions) as session:
        rows = await session.scalars(select(PairCount).where(PairCount.dimension == dimension))
        return sum(r.lo_wins + r.hi_wins + r.ties + r.both_bad for r in rows)


async def stored_battle(runtime, battle_id: str) -> Battle:
    async with transaction(runtime.sessions) as session:
        return await session.get(Battle, uuid.UUID(battle_id))


async def answered_ago(runtime, battle_id: str, seconds: float) -> None:
    """As if the answers had been complete for ``seconds`` (battles are updatable; votes are not)."""
    async with transaction(runtime.sessions) as session:
        await session.execute(text("UPDATE battles SET answered_at = clock_timestamp() - make_interval(secs => :s) "
                                   "WHERE id = :id"), {"s": seconds, "id": uuid.UUID(battle_id)})
