"""A write is committed before its answer leaves: at the last byte of the response, a second
connection already sees it.

Since FastAPI 0.118 the code after `yield` of a dependency runs, by default, after the response
is sent; `get_session` commits there, so it is declared with `scope="function"`. These tests
fail if the commit ever moves behind the response again.
"""

import asyncio
from collections.abc import Callable

import httpx
import psycopg

from core.db import libpq_url, transaction
from core.keys.models import KeyScope
from core.keys.service import create_key
from core.registry.models import ContestantStatus
from core.registry.schemas import ContestantIn
from server.contestants import register


def checking_at_last_byte(app, check: Callable[[], object], seen: list) -> Callable:
    """The app, with `check` run (from another connection) just before the response's last byte is sent."""

    async def wrapped(scope, receive, send) -> None:
        async def send_checked(message) -> None:
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                seen.append(await asyncio.to_thread(check))
            await send(message)

        await app(scope, receive, send_checked)

    return wrapped


async def _client(runtime, check: Callable[[], object], seen: list) -> httpx.AsyncClient:
    from server.app import create_app

    app = create_app(runtime.settings, "unused://", with_worker=False)
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=checking_at_last_byte(app, check, seen), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


def _status_of(db_url: str, slug: str) -> Callable[[], str | None]:
    def read() -> str | None:
        with psycopg.connect(libpq_url(db_url)) as conn:
            row = conn.execute("SELECT status FROM models WHERE slug = %s", (slug,)).fetchone()
        return row[0] if row else None

    return read


async def test_retiring_is_committed_before_the_answer_is_sent(runtime, db_url) -> None:
    async with transaction(runtime.sessions) as session:
        config = {"kind": "llamacpp", "model": "smollm2-135m-instruct"}
        entry = ContestantIn(slug="old-model", display_name="Old", organisation="t", config=config)
        await register(session, entry, ContestantStatus.active, actor="test")
        admin = await create_key(session, "tester", KeyScope.admin, actor="test")
    seen: list = []
    async with await _client(runtime, _status_of(db_url, "old-model"), seen) as http:
        response = await http.post(
            "/api/v1/models/old-model/retire", headers={"Authorization": f"Bearer {admin.plaintext}"}
        )
    assert response.status_code == 200, response.text
    assert seen == ["retired"], "the retirement was committed after the answer was sent"


async def test_a_vote_is_committed_before_the_answer_is_sent(runtime, db_url) -> None:
    from server.seed import seed_defaults

    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)

    def votes() -> int:
        with psycopg.connect(libpq_url(db_url)) as conn:
            return conn.execute("SELECT count(*) FROM votes").fetchone()[0]

    seen: list = []
    async with await _client(runtime, votes, seen) as http:
        battle = (await http.post("/api/v1/battles", json={"prompt": "hi"})).json()
        voted = await http.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": "a"})
    assert voted.status_code == 200, voted.text
    assert seen[-1] == 1, "the vote was committed after the answer was sent"
