"""Rate limits, quotas, body caps and input the database cannot store, through real HTTP on a real database."""

import math
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select, update
from starlette.requests import Request

from core.db import transaction, utcnow
from core.errors import LibraError
from core.keys.models import KeyScope, RateCounter
from core.keys.service import create_key
from core.settings import Settings
from evaluation.models import EvalRun, RunStatus
from server.middleware import SESSION_COOKIE
from server.seed import seed_defaults
from server.voters import client_address
from tests.server.livesite import serving

CONFIG = {"kind": "openai", "base_url": "https://models.example.org/v1", "model": "m"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(_env_file=None, database_url=None, home=tmp_path, max_prompt_chars=8000, rate_battles=3,
                    rate_votes=2, rate_address_factor=2, quota_models_per_day=3, quota_evals_in_flight=2)


@pytest.fixture
async def seeded(runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)


def _rate_limited(response: httpx.Response, window_s: int = 600) -> bool:
    retry = int(response.headers.get("retry-after", "0"))
    return (response.status_code == 429 and response.json()["error"]["code"] == "rate_limited"
            and 1 <= retry <= window_s)


async def test_battles_over_the_limit_get_429_with_retry_after(client, seeded) -> None:  # noqa: ANN001
    for _ in range(3):
        assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    assert SESSION_COOKIE in client.cookies
    assert _rate_limited(await client.post("/api/v1/battles", json={"prompt": "hi"}))
    # A client that drops its cookie is a new client, but its address still counts (limit 3 x 2 = 6).
    client.cookies.clear()
    for _ in range(2):
        assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    assert _rate_limited(await client.post("/api/v1/battles", json={"prompt": "hi"}))


async def test_counters_name_clients_by_salted_hashes_only(client, seeded, runtime) -> None:  # noqa: ANN001
    """Battles count like votes: by the session's and the address's salted hashes, never the address or the
    session id itself (rate_counters outlive the request by days and go into backups)."""
    assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    await client.post(f"/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "a"})
    session_id = client.cookies[SESSION_COOKIE].split(".")[0]
    async with transaction(runtime.sessions) as session:
        buckets = sorted(await session.scalars(select(RateCounter.bucket)))
    assert [b.rsplit(":", 1)[0] for b in buckets] == ["battles:addr", "battles:session", "votes:addr", "votes:session"]
    assert all(len(b.rsplit(":", 1)[1]) == 64 for b in buckets)
    assert not any(raw in b for b in buckets for raw in (session_id, "127.0.0.1"))
    assert {b.rsplit(":", 1)[1] for b in buckets if b.startswith("battles")} == {
        b.rsplit(":", 1)[1] for b in buckets if b.startswith("votes")}


async def test_counters_of_long_gone_clients_are_purged_at_most_once_a_minute(  # noqa: ANN001
        client, seeded, runtime, monkeypatch) -> None:
    """A new client's first battle purges counters whose window ended PURGE_AFTER_S ago, but a process purges
    at most once per PURGE_EVERY_S: on a public site new clients come all the time, and each purge is a
    round trip of the request that makes it."""
    from core.keys import limits

    monkeypatch.setattr(limits, "_last_purge", [-math.inf])
    gone_since = utcnow() - timedelta(seconds=limits.PURGE_AFTER_S + 3600)

    async def left_behind(bucket: str) -> None:
        async with transaction(runtime.sessions) as session:
            session.add(RateCounter(bucket=bucket, window_start=gone_since, count=1))

    async def kept() -> set[str]:
        async with transaction(runtime.sessions) as session:
            return set(await session.scalars(select(RateCounter.bucket)))

    await left_behind("battles:session:gone-1")
    assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    assert "battles:session:gone-1" not in await kept()
    await left_behind("battles:session:gone-2")
    client.cookies.clear()  # another new client, within the minute: no purge
    assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    assert "battles:session:gone-2" in await kept()
    monkeypatch.setattr(limits, "_last_purge", [time.monotonic() - limits.PURGE_EVERY_S])
    client.cookies.clear()
    assert (await client.post("/api/v1/battles", json={"prompt": "hi"})).status_code == 201
    assert "battles:session:gone-2" not in await kept()


async def test_votes_over_the_limit_get_429(client) -> None:  # noqa: ANN001
    for _ in range(2):
        assert (await client.post(f"/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "a"})).status_code == 404
    assert _rate_limited(await client.post(f"/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "a"}))


def test_limits_hold_across_two_api_processes_on_one_database(db_url: str, tmp_path: Path) -> None:
    env = {"LIBRA_DATABASE_URL": db_url, "LIBRA_HOME": str(tmp_path), "LIBRA_RATE_VOTES": "3",
           "LIBRA_RATE_ADDRESS_FACTOR": "100", "LIBRA_SEED_DEFAULTS": "false",
           "LIBRA_FIRST_RUN_EVALUATIONS": "false"}
    with (serving(env, "--no-worker") as (first, _), serving(env, "--no-worker") as (second, _),
          httpx.Client(timeout=30) as http):
        answers = [http.post(f"{base}/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "a"})
                   for base in (first, second, first, second)]
        assert [a.status_code for a in answers[:3]] == [404, 404, 404]
        assert _rate_limited(answers[3]), answers[3].text
        # Only the first answer set the cookie: the second process accepted the first one's signature.
        assert [bool(a.headers.get("set-cookie")) for a in answers] == [True, False, False, False]
        chunks = (b"x" * 1024 for _ in range(100))
        too_big = http.post(f"{second}/api/v1/battles", content=chunks,
                            headers={"Content-Type": "application/json"})
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "payload_too_large"


async def test_model_quota_per_day_and_evaluations_in_flight(client, runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "lab", KeyScope.submitter, actor="test")
    headers = {"Authorization": f"Bearer {issued.plaintext}"}

    async def submit(slug: str) -> httpx.Response:
        body = {"slug": slug, "display_name": slug, "organisation": "Lab", "config": CONFIG}
        return await client.post("/api/v1/models", json=body, headers=headers)

    first = await submit("model-a")
    assert first.status_code == 201, first.text
    assert (await submit("model-a")).status_code == 409  # a failed submission gives its quota back
    assert (await submit("model-b")).status_code == 201
    in_flight = await submit("model-c")
    assert _rate_limited(in_flight) and "queued or running" in in_flight.json()["error"]["message"]
    async with transaction(runtime.sessions) as session:
        await session.execute(update(EvalRun).values(status=RunStatus.finished))
    assert (await submit("model-c")).status_code == 201
    per_day = await submit("model-d")
    assert _rate_limited(per_day, 86_400) and "per day" in per_day.json()["error"]["message"]


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_over_the_cap_gets_413(client, chunked: bool) -> None:  # noqa: ANN001
    payload = b'{"prompt": "' + b"x" * 100 * 1024 + b'"}'


    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(payload), 4096):
            yield payload[start:start + 4096]

    response = await client.post("/api/v1/battles", content=chunks() if chunked else payload,
                                 headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == {"code": "payload_too_large", "field": "body",
                                        "message": "the request body is larger than 65536 bytes"}


@pytest.mark.parametrize(("prompt", "message"), [(" \n\t ", "blank"), ("\u00f3\u0000", "NUL")])
async def test_prompts_the_database_cannot_use_get_422_naming_the_field(client, prompt: str, message: str) -> None:  # noqa: ANN001
    response = await client.post("/api/v1/battles", json={"prompt": prompt})
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["field"] == "prompt" and message in error["message"]


async def test_a_nul_in_a_submission_gets_422_naming_the_field(client, runtime) -> None:  # noqa: ANN001
    async with transaction(runtime.sessions) as session:
        issued = await create_key(session, "lab", KeyScope.submitter, actor="test")
    body = {"slug": "nul-model", "display_name": "a\u0000b", "organisation": "Lab", "config": CONFIG}
    response = await client.post("/api/v1/models", json=body, headers={"Authorization": f"Bearer {issued.plaintext}"})
    assert response.status_code == 422 and response.json()["error"]["field"] == "display_name"


@pytest.mark.parametrize(("peer", "forwarded", "trusted", "expected"), [
    ("10.0.0.5", "203.0.113.9", "", "10.0.0.5"),  # default: X-Forwarded-For does not count
    ("10.0.0.5", "203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
    ("10.0.0.5", "198.51.100.1, 203.0.113.9, 10.0.0.7", "10.0.0.0/8", "203.0.113.9"),  # nearest untrusted hop
    ("192.0.2.1", "203.0.113.9", "10.0.0.0/8", "192.0.2.1"),  # an untrusted peer cannot claim an address
    # A dual-stack socket gives an IPv4 peer as ::ffff:a.b.c.d: still the proxy named by its IPv4 range.
    ("::ffff:10.0.0.5", "203.0.113.9", "10.0.0.0/8", "203.0.113.9"),
    ("10.0.0.5", "2001:db8::1, ::ffff:10.0.0.7", "10.0.0.0/8", "2001:db8::1"),
    ("::ffff:192.0.2.1", "203.0.113.9", "10.0.0.0/8", "::ffff:192.0.2.1"),
    # Hops with a port (some proxies write one): the port goes, or each connection would be a new client.
    ("10.0.0.5", "203.0.113.9:51234, 10.0.0.7:443", "10.0.0.0/8", "203.0.113.9"),
    ("10.0.0.5", "[2001:db8::1]:443", "10.0.0.0/8", "2001:db8::1"),
    ("10.0.0.5", "2001:db8::1", "10.0.0.0/8", "2001:db8::1"),  # an IPv6 address is not a port
])
def test_client_address_believes_forwarded_for_only_from_trusted_proxies(
    peer: str, forwarded: str, trusted: str, expected: str
) -> None:
    scope = {"type": "http", "client": (peer, 1234), "headers": [(b"x-forwarded-for", forwarded.encode())]}
    assert client_address(Request(scope), trusted) == expected


async def test_counters_of_clients_long_gone_are_dropped(client, runtime, monkeypatch) -> None:  # noqa: ANN001
    from core.keys import limits

    monkeypatch.setattr(limits, "_last_purge", [-math.inf])  # a purge is due (test_..._at_most_once_a_minute)
    async with transaction(runtime.sessions) as session:
        session.add(RateCounter(bucket="votes:session:gone", window_start=utcnow() - timedelta(days=3), count=9))
    await client.post(f"/api/v1/battles/{uuid.uuid4()}/vote", json={"helpfulness": "a"})
    async with transaction(runtime.sessions) as session:
        buckets = set(await session.scalars(select(RateCounter.bucket)))
    assert "votes:session:gone" not in buckets and len(buckets) == 2


def test_open_streams_count_per_client_and_address_and_forget_clients_with_none_open() -> None:
    from arena.integrity import VoterIdentity
    from server.limits import OpenStreams

    settings = Settings(_env_file=None, database_url=None, arena_streams_per_client=2, rate_address_factor=2)
    streams = OpenStreams()
    one, two = VoterIdentity("s1", "addr", "net"), VoterIdentity("s2", "addr", "net")
    held = [streams.take(one, settings), streams.take(one, settings)]
    with pytest.raises(LibraError) as refused:
        streams.take(one, settings)  # the client's cap
    assert (refused.value.status, refused.value.code) == (429, "too_many_streams")
    held += [streams.take(two, settings), streams.take(two, settings)]
    with pytest.raises(LibraError):
        streams.take(VoterIdentity("s3", "addr", "net"), settings)  # the address's: 2 x 2
    held[0]()
    held[0]()  # a second release gives nothing back twice
    held.append(streams.take(VoterIdentity("s3", "addr", "net"), settings))
    with pytest.raises(LibraError):
        streams.take(one, settings)  # below its own cap again, but the address is full
    for release in held:
        release()
    assert not streams._open  # nothing kept for clients that hold no stream
    unlimited = Settings(_env_file=None, database_url=None, arena_streams_per_client=0)
    assert all(streams.take(one, unlimited) for _ in range(100)) and not streams._open


def test_the_request_budget_lets_a_burst_through_then_one_request_per_refill_and_forgets_the_longest_unseen() -> None:
    from server.limits import RequestBudget

    now = [100.0]
    budget = RequestBudget(per_s=2.0, burst=3, most_clients=2, clock=lambda: now[0])
    assert [budget.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert budget.take("a") == pytest.approx(0.5)  # empty: one request comes back every 1 / per_s
    assert budget.take("b") == 0.0  # another address has its own
    now[0] += 0.5
    assert budget.take("a") == 0.0 and budget.take("a") == pytest.approx(0.5)  # a refused request took nothing
    now[0] += 60
    assert [budget.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, never above it
    budget.take("c")  # a third address: "b", seen longest ago, is forgotten
    assert len(budget) == 2 and budget.take("a") > 0 and budget.take("b") == 0.0  # "a" still empty, "b" anew


async def test_an_address_past_its_request_budget_gets_429_but_never_on_the_liveness_probe(runtime, seeded) -> None:  # noqa: ANN001
    from server.app import create_app

    settings = runtime.settings.model_copy(update={"rate_requests_per_s": 0.01, "rate_requests_burst": 4})
    app = create_app(settings, "unused://")
    app.state.runtime = runtime

    def client_at(address: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 4711)), base_url="http://t")

    async with client_at("2001:db8:5:1::1") as first, client_at("2001:db8:5:1::2") as same_64, \
            client_at("203.0.113.5") as other:
        assert [(await first.get("/api/v1/battles/harm-categories")).status_code for _ in range(3)] == [200] * 3
        assert (await same_64.get("/api/v1/leaderboard")).status_code == 200  # the 4th of the /64's burst
        refused = await same_64.post("/api/v1/battles", json={"prompt": "hi"})
        assert refused.status_code == 429 and refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 100 and refused.headers["x-content-type-options"] == "nosniff"
        assert [(await first.get("/api/v1/healthz")).status_code for _ in range(10)] == [200] * 10
        assert (await other.get("/api/v1/battles/harm-categories")).status_code == 200
    async with transaction(runtime.sessions) as session:  # the refused battle reached nothing
        assert not list(await session.scalars(select(RateCounter.bucket)))
