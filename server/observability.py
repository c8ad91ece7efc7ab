"""Request ids and Prometheus metrics: what an operator needs to follow one action and the whole service.

Every answer carries ``X-Request-ID``: the client's own when it is sane (at most 128 characters of
``[A-Za-z0-9._:-]``), else a fresh one; every log line of the request, and of the jobs it queues
(``server.jobs``), carries it as ``request_id``.

``/metrics`` serves the Prometheus text format through prometheus_client: this process's counters
(or, with ``PROMETHEUS_MULTIPROC_DIR`` set, those of every process writing to that folder) plus the
database gauges of ``server.metric_gauges``. It reveals operational data, so it answers either to a
bearer token (``LIBRA_METRICS_TOKEN``) or, without one, only to a direct client on a loopback or
private address: a request relayed by a proxy (``X-Forwarded-For`` or ``Forwarded``) is refused,
since it may come from anywhere.
"""

import asyncio
import hmac
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from core.addresses import ip_of
from core.errors import LibraError
from core.logging import request_id
from core.settings import Settings
from server import metric_gauges
from server.route_labels import RouteLabels

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "x-request-id"
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def install_observability(app: FastAPI, settings: Settings) -> None:
    """Adds the request-id and metrics layer (outermost) and the /metrics route."""
    build = app.build_middleware_stack

    # Outside Starlette's own error middleware, so that a 500 still gets its request id and is counted,
    # and the unhandled-error log line still carries the id.
    def build_with_context() -> ASGIApp:
        return RequestContext(build(), app)

    app.build_middleware_stack = build_with_context  # type: ignore[method-assign]
    gauges = app.state.metric_gauges = metric_gauges.DatabaseGauges()
    token = metrics_token(settings)

    async def metrics_page(request: Request) -> Response:
        _check_access(request, token)
        runtime = getattr(request.app.state, "runtime", None)
        reading = await gauges.current(runtime.sessions) if runtime is not None else None
        # Off the event loop: with several processes it reads every process's files.
        return Response(await asyncio.to_thread(render, reading), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/metrics", metrics_page, methods=["GET"], include_in_schema=False)


def metrics_token(settings: Settings) -> str | None:
    """LIBRA_METRICS_TOKEN, or None when unset or empty."""
    token = settings.metrics_token
    return (token.get_secret_value() if token is not None else None) or None


def request_id_for(headers: Headers) -> str:
    given = headers.get(REQUEST_ID_HEADER)
    return given if given is not None and SANE_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


class RequestContext:
    """Sets the request id for the request's log lines and answer, and counts and times the request."""

    def __init__(self, inner: ASGIApp, app: FastAPI) -> None:
        self.inner = inner
        self.app = app
        self.routes = RouteLabels(app)
        self._watched: object = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        self._watch_pool()
        current = request_id_for(Headers(scope=scope))
        token = request_id.set(current)
        started, answer = time.perf_counter(), {"status": 500}

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = current
            await send(message)

        try:
            await self.inner(scope, receive, send_with_id)
        finally:
            self._record(scope, answer["status"], time.perf_counter() - started)
        # Not reset when the request failed: the server's error report still runs in this context.
        request_id.reset(token)

    def _record(self, scope: Scope, status: int, took_s: float) -> None:
        route, method, status_class = self.routes.label(scope), scope["method"], f"{status // 100}xx"
        metrics.HTTP_REQUESTS.labels(route, method, status_class).inc()
        metrics.HTTP_LATENCY.labels(route, method, status_class).observe(took_s)
        # An access line only at DEBUG: at INFO it would be one line per vote, and a database outage
        # (one line per failure kind per interval, server.faults) must not become one line per request.
        if log.isEnabledFor(logging.DEBUG):
            log.debug("http.request", extra={"method": method, "route": route, "status": status,
                                             "duration_ms": round(took_s * 1000, 1)})

    def _watch_pool(self) -> None:
        runtime = getattr(self.app.state, "runtime", None)
        if runtime is not None and runtime.engine is not self._watched:
            metrics.watch_pool(runtime.engine)
            self._watched = runtime.engine


def _check_access(request: Request, token: str | None) -> None:
    if token is not None:
        if not bearer_matches(request.headers.get("authorization", ""), token):
            raise LibraError("/metrics needs the bearer token set in LIBRA_METRICS_TOKEN", status=401,
                             code="unauthorized", headers={"WWW-Authenticate": "Bearer"})
        return
    relayed = "x-forwarded-for" in request.headers or "forwarded" in request.headers
    if relayed or not _private(request.client.host if request.client else None):
        raise LibraError("/metrics answers only to clients on a private network; set LIBRA_METRICS_TOKEN "
                         "to read it from elsewhere", status=403, code="forbidden")


def bearer_matches(authorization: str, token: str) -> bool:
    scheme, _, given = authorization.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _private(host: str | None) -> bool:
    if host is None:  # a Unix socket: only this machine reaches it
        return True
    # An IPv4 peer in IPv6 form is judged as IPv4: older Python releases took every such address for private.
    address = ip_of(host)
    return address is not None and (address.is_loopback or address.is_private)


def process_registry() -> CollectorRegistry:
    """This process's metrics, or every process's when several share ``PROMETHEUS_MULTIPROC_DIR``."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


def render(reading: metric_gauges.Reading | None) -> bytes:
    database = CollectorRegistry(auto_describe=False)
    database.register(_Fixed(list(metric_gauges.families(reading))))
    return generate_latest(process_registry()) + generate_latest(database)


class _Fixed:
    """A collector of metric families read beforehand (collect() must not wait on the database)."""

    def __init__(self, families: Iterable[object]) -> None:
        self._families = list(families)

    def collect(self) -> Iterable[object]:
        return self._families


class _Quiet(WSGIRequestHandler):
    def log_message(self, *_: object) -> None:  # one line per scrape would drown the worker's own log
        return None


def serve_worker_metrics(settings: Settings, port: int, host: str | None = None) -> Callable[[], None]:
    """``libra worker --metrics-port``: this worker's metrics on their own small HTTP server (a thread) on
    ``host`` (default LIBRA_HOST), behind the same bearer token as /metrics when one is set. Returns the
    function that stops it."""
    token, inner = metrics_token(settings), make_wsgi_app(process_registry())

    def guarded(environ: dict, start_response: Callable) -> Iterable[bytes]:
        if token is not None and not bearer_matches(environ.get("HTTP_AUTHORIZATION", ""), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"), ("WWW-Authenticate", "Bearer")])
            return [b"the bearer token set in LIBRA_METRICS_TOKEN is required\n"]
        return inner(environ, start_response)

    server = make_server(host or settings.host, port, guarded, ThreadingWSGIServer, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="libra-metrics", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return stop
