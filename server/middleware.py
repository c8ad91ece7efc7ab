"""ASGI middleware: security headers, the requests per address, the request body cap and the anonymous
session cookie.

Plain ASGI rather than ``BaseHTTPMiddleware``, so that streamed answers (SSE) pass through untouched
and a body is counted as it arrives, never read whole first.
"""

import base64
import hashlib
import hmac
import json
import math
import secrets

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request, cookie_parser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from arena.integrity import client_of
from core.secrets import home_secret
from core.settings import Settings
from server.limits import RequestBudget
from server.voters import client_address

# No 'unsafe-inline': the page loads app.js and style.css only. /docs and /redoc set their own policy.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; base-uri 'none'; object-src 'none'; form-action 'self'; frame-ancestors 'none'"
)
SESSION_COOKIE = "libra_session"
SESSION_MAX_AGE_S = 365 * 86_400


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", CONTENT_SECURITY_POLICY)
                headers.setdefault("x-content-type-options", "nosniff")
                headers.setdefault("referrer-policy", "no-referrer")
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def send_error(send: Send, status: int, code: str, message: str, field: str | None = None,
                     headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    body = json.dumps({"error": {"code": code, "message": message, "field": field}}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


# Never refused: a liveness probe that got 429 would have the process restarted, and /healthz reads nothing;
# /metrics has its own guard. /readyz reads the database, and a probe's few calls a minute never come near.
UNLIMITED_PATHS = frozenset({"/api/v1/healthz", "/metrics"})


class RequestLimit:
    """429 `rate_limited` for an address past its request budget (``server.limits.RequestBudget``;
    LIBRA_RATE_REQUESTS_PER_S and LIBRA_RATE_REQUESTS_BURST). An address is what the rate limits count:
    behind a trusted proxy the visitor's, an IPv6 client's /64 (``arena.integrity.client_of``)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.trusted = settings.trusted_proxies
        self.budget = RequestBudget(settings.rate_requests_per_s, settings.rate_requests_burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNLIMITED_PATHS:
            await self.app(scope, receive, send)
            return
        wait = self.budget.take(client_of(client_address(Request(scope), self.trusted))[0])
        if wait > 0:
            retry = max(1, math.ceil(wait))
            await send_error(send, 429, "rate_limited", f"too many requests from this address; try again in {retry} s",
                             headers=((b"retry-after", str(retry).encode()),))
            return
        await self.app(scope, receive, send)


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    """413 for a body over ``max_bytes``: at once from Content-Length, or as soon as a streamed
    (chunked) body passes the cap, whatever the app then answers."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        state = {"received": 0, "too_big": False, "started": False}

        async def counted_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if state["received"] > self.max_bytes:
                    state["too_big"] = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            if state["too_big"]:
                return  # the app's own answer to the broken read; ours goes out below
            state["started"] = state["started"] or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not state["too_big"]:
                raise
        if state["too_big"] and not state["started"]:
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await send_error(send, 413, "payload_too_large",
                         f"the request body is larger than {self.max_bytes} bytes", "body")


def session_secret(settings: Settings) -> bytes:
    """LIBRA_SESSION_SECRET, or a random key generated once into LIBRA_HOME/session.key."""
    if settings.session_secret is not None:
        return settings.session_secret.get_secret_value().encode()
    return home_secret(settings, "session.key")


class SessionCookie:
    """Gives every client a signed random id (``request.state.client_session``), set as a cookie on
    its first request; the rate limits count per id. It carries no data and no login."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self._secret: bytes | None = None  # read on first use, not at import or app build

    def _sign(self, value: str) -> str:
        if self._secret is None:
            self._secret = session_secret(self.settings)
        digest = hmac.new(self._secret, value.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def _verified(self, cookie: str | None) -> str | None:
        value, _, signature = (cookie or "").partition(".")
        if value and signature and hmac.compare_digest(signature, self._sign(value)):
            return value
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        session = self._verified(cookie_parser(Headers(scope=scope).get("cookie", "")).get(SESSION_COOKIE))
        fresh = session is None
        session = session or secrets.token_urlsafe(18)
        scope.setdefault("state", {})["client_session"] = session
        if not fresh:
            await self.app(scope, receive, send)
            return
        cookie = (f"{SESSION_COOKIE}={session}.{self._sign(session)}; Path=/; Max-Age={SESSION_MAX_AGE_S}; "
                  f"HttpOnly; SameSite=Lax" + ("; Secure" if scope.get("scheme") == "https" else ""))

        async def send_with_cookie(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("set-cookie", cookie)
            await send(message)

        await self.app(scope, receive, send_with_cookie)
