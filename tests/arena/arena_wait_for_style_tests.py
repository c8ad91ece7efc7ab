"""A battle made through the API, once its answers are in (the answers may still be generating when
the creating request returns)."""

import asyncio
from typing import Any

import httpx


async def ready_battle(client: httpx.AsyncClient, prompt: str, timeout_s: float = 30.0) -> dict[str, Any]:
    created = await client.post("/api/v1/battles", json={"prompt": prompt})
    assert created.status_code == 201, created.text
    battle = created.json()
    deadline = asyncio.get_running_loop().time() + timeout_s
    while battle["status"] == "generating" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        battle = (await client.get(f"/api/v1/battles/{battle['id']}")).json()
    assert battle["status"] == "ready", battle
    return battle
