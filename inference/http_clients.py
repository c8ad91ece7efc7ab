"""The HTTP clients of OpenAI-compatible endpoints: one per endpoint, opened on first use, closed when idle.

- **One client per endpoint.** httpcore's pool asks every connection it keeps whether it expired (a socket
  poll each) at the start and end of every request, so a client shared by every endpoint made each call
  scan all of their connections (docs/inference.md, "HTTP backend").
- **One TLS context for all of them.** httpx builds a context per client unless given one, and building
  one loads the CA bundle: about 20 ms of CPU on the event loop and 0.8 MB per client (43 ms for a
  checked client, which built two), against 0.06 ms and a few kB with a shared context.
- **Closed when idle.** httpcore closes a kept-alive connection that expired only when a request passes
  through its pool, so the client of an endpoint nobody calls any more (a retired model, a rejected
  submission) would hold its sockets open for the process's life. A client unused for `idle_close_s`,
  with no call in flight, is closed; its endpoint's next call opens a new one.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import httpx

from inference.egress import IPNetwork, guarded_client

LIMITS = httpx.Limits(max_connections=256, max_keepalive_connections=64)
IDLE_CLOSE_S = 300.0  # a client unused this long is closed
SWEEP_EVERY_S = 60.0  # idle clients are looked for at most this often (at the end of a call)


class EndpointClient:
    """An endpoint's client as backends hold it: each call borrows the current one, so that a client is
    never closed under a call and one closed for idleness is opened again by the next call."""

    def __init__(self, open_client: Callable[[], httpx.AsyncClient], owner: EndpointClients | None) -> None:
        self._open, self._owner = open_client, owner  # no owner: a client given from outside, never closed
        self._client: httpx.AsyncClient | None = None
        self.in_flight = 0
        self.last_used = time.monotonic()

    @asynccontextmanager
    async def borrowed(self) -> AsyncIterator[httpx.AsyncClient]:
        if self._client is None:
            self._client = self._open()
        self.in_flight += 1
        try:
            yield self._client
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()
            if self._owner is not None:
                self._owner.sweep_when_due()

    @property
    def is_open(self) -> bool:
        return self._client is not None

    def detach_if_idle(self, now: float, idle_s: float) -> httpx.AsyncClient | None:
        """Its client, no longer this endpoint's, if it has been unused for ``idle_s`` with no call in flight."""
        if self.in_flight or now - self.last_used < idle_s:
            return None
        return self.detach()

    def detach(self) -> httpx.AsyncClient | None:
        """Its client for the caller to close (none if it has none, or does not own it)."""
        if self._owner is None:
            return None
        client, self._client = self._client, None
        return client


class EndpointClients:
    """Every endpoint's client, checked ones (submitted endpoints: "egress": "public") apart."""

    def __init__(self, egress_allow: Sequence[IPNetwork], given: httpx.AsyncClient | None = None, *,
                 idle_close_s: float = IDLE_CLOSE_S, sweep_every_s: float = SWEEP_EVERY_S) -> None:
        self._allow, self._given = tuple(egress_allow), given
        self.idle_close_s, self.sweep_every_s = idle_close_s, sweep_every_s
        self._clients: dict[tuple[bool, str], EndpointClient] = {}
        self._tls: ssl.SSLContext | None = None
        self._last_sweep = time.monotonic()
        self._closing: set[asyncio.Task[None]] = set()

    def for_endpoint(self, endpoint: str, checked: bool) -> EndpointClient:
        """The endpoint's client; a client given to the pool serves every unchecked endpoint."""
        key = (checked, endpoint) if self._given is None or checked else (False, "")
        holder = self._clients.get(key)
        if holder is None:
            holder = self._clients[key] = self._new_holder(checked)
        return holder

    @property
    def open_count(self) -> int:
        return sum(holder.is_open for holder in self._clients.values())

    def sweep_when_due(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= self.sweep_every_s:
            self._last_sweep = now
            self.close_idle(now)

    def close_idle(self, now: float | None = None) -> int:
        """Closes (in the background) the clients idle for `idle_close_s`; how many."""
        now = time.monotonic() if now is None else now
        idle = [c for h in self._clients.values() if (c := h.detach_if_idle(now, self.idle_close_s))]
        for client in idle:
            task = asyncio.get_running_loop().create_task(client.aclose())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        return len(idle)

    async def aclose(self) -> None:
        """Closes every client, in use or not (shutdown). The holders stay: a later call opens a new one,
        which the next `aclose` closes."""
        for holder in list(self._clients.values()):
            if (client := holder.detach()) is not None:
                await client.aclose()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    def new_client(self, checked: bool) -> httpx.AsyncClient:
        """A new client with the shared TLS context (a holder opens one when a call needs it)."""
        if checked:
            return guarded_client(self._allow, LIMITS, self._tls_context())
        return httpx.AsyncClient(limits=LIMITS, verify=self._tls_context())

    def _new_holder(self, checked: bool) -> EndpointClient:
        if self._given is not None and not checked:
            given = self._given
            return EndpointClient(lambda: given, owner=None)
        return EndpointClient(lambda: self.new_client(checked), owner=self)

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:  # built at the first client, not at startup: many services call no endpoint
            self._tls = httpx.create_ssl_context()
        return self._tls
