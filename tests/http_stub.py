"""A tiny threaded HTTP server on loopback for tests that need a real peer (a model endpoint that answers,
refuses, redirects or records what it was sent). Only the handler differs between tests."""

import json
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class JsonHandler(BaseHTTPRequestHandler):
    """Base handler: quiet, with one way to answer JSON."""

    def send_json(self, status: int, body: object) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def log_message(self, *args: object) -> None:
        return None


class StreamingHandler(JsonHandler):
    """Base handler of an OpenAI-style endpoint that streams: `stream(words, delay_s)` sends each word as a
    chat-completion delta (Server-Sent Events in HTTP/1.1 chunks), then the stop and `[DONE]`."""

    protocol_version = "HTTP/1.1"

    def stream(self, words: Iterable[str], delay_s: float) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for word in words:
                time.sleep(delay_s)
                self._data({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
            self._data({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")
        except (BrokenPipeError, ConnectionResetError):  # the client hung up: nothing to finish
            return

    def _data(self, payload: dict) -> None:
        self._chunk(f"data: {json.dumps(payload)}\n\n".encode())

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 overflows when a battle burst opens 16 connections at once on a busy
    # machine: connections then wait for SYN retries, and a CI run saw one answer fail as unavailable.
    request_queue_size = 256


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``handler`` on a free port of ``host``; yields the OpenAI-style base URL (``.../v1``)."""
    httpd = _Server((host, 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    shown = f"[{host}]" if ":" in host else host
    try:
        yield f"http://{shown}:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
