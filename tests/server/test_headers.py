"""Security headers on every answer, a page that needs no inline code, and CORS closed unless configured."""

import re
from importlib import resources
from pathlib import Path

import httpx
import pytest

from core.settings import Settings
from server.app import create_app

ORIGIN = "https://arena.example.org"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=None, home=tmp_path)


def _secured(response: httpx.Response) -> None:
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/", 200),
    ("GET", "/assets/arena.js", 200),
    ("GET", "/leaderboard", 200),
    ("GET", "/models/any-slug", 200),
    ("GET", "/api/v1/models", 200),
    ("GET", "/api/v1/models/no-such-model", 404),
    ("POST", "/api/v1/battles", 422),
])
async def test_every_answer_has_the_security_headers(client, method: str, path: str, status: int) -> None:  # noqa: ANN001
    response = await client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == status
    _secured(response)
    assert "access-control-allow-origin" not in response.headers


async def test_the_docs_keep_their_own_policy(client) -> None:  # noqa: ANN001
    response = await client.get("/docs")
    assert response.status_code == 200
    assert response.headers["x-content-type-options"] == "nosniff"
    assert len(response.headers.get_list("content-security-policy")) == 1


async def test_cors_is_closed_by_default(client) -> None:  # noqa: ANN001
    preflight = await client.options("/api/v1/models", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
    assert "access-control-allow-origin" not in preflight.headers
    plain = await client.get("/api/v1/models", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in plain.headers


async def test_cors_opens_for_a_configured_origin(runtime, tmp_path: Path) -> None:  # noqa: ANN001
    settings = Settings(_env_file=None, database_url=None, home=tmp_path, cors_origins=ORIGIN)
    app = create_app(settings, "unused://")
    app.state.runtime = runtime
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        preflight = await http.options("/api/v1/models", headers={
            "Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] == ORIGIN
        _secured(preflight)
        allowed = await http.get("/api/v1/models", headers={"Origin": ORIGIN})
        assert allowed.headers["access-control-allow-origin"] == ORIGIN
        other = await http.get("/api/v1/models", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers


def test_the_pages_have_no_inline_script_or_style() -> None:
    frontend = Path(str(resources.files("frontend")))
    for page in (frontend / "html").glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text), f"{page.name}: inline <script> is blocked by the CSP"
        assert "<style" not in text and "style=" not in text, page.name
        assert not re.search(r"\son[a-z]+=", text), f"{page.name}: inline event handlers are blocked by the CSP"
    for script in (frontend / "src").rglob("*.js"):
        text = script.read_text()
        assert "style=" not in text, f"{script.name}: style attributes in HTML strings are blocked by the CSP"
        assert not re.search(r"\son[a-z]+=[\"']", text), script.name
        assert "innerHTML" not in text, f"{script.name}: HTML goes in through lib/markdown.js only"


async def test_the_session_cookie_is_httponly_and_lax(client) -> None:  # noqa: ANN001
    first = await client.get("/")
    cookie = first.headers["set-cookie"]
    assert cookie.startswith("libra_session=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    assert "set-cookie" not in (await client.get("/")).headers  # the signed cookie is accepted
    client.cookies.set("libra_session", "forged.signature")
    assert "set-cookie" in (await client.get("/")).headers


async def test_the_session_cookie_is_secure_over_https(runtime, settings: Settings) -> None:  # noqa: ANN001
    app = create_app(settings, "unused://")
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://test") as http:
        assert "Secure" in (await http.get("/")).headers["set-cookie"]
