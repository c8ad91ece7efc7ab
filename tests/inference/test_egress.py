"""The egress policy of submitted endpoints: addresses, real connection attempts, rebinding, redirects."""

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpcore
import httpx
import pytest

from inference import BackendPool, Message, SamplingParams
from inference.egress import (
    EgressRefused,
    GuardedNetworkBackend,
    guarded_client,
    parse_networks,
    refusal,
    resolve_checked,
)
from inference.errors import RequestRejected
from tests.http_stub import JsonHandler, serving

ANSWER = {"choices": [{"message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}


@dataclass
class StubEndpoint:
    """An OpenAI-compatible endpoint on loopback that records the headers of every request."""

    host: str = "127.0.0.1"
    redirect_to: str | None = None
    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""

    def config(self, **extra: object) -> dict:
        return {"kind": "openai", "base_url": self.base_url, "model": "stub", "max_retries": 0, **extra}


@contextmanager
def stub_endpoint(host: str = "127.0.0.1", redirect_to: str | None = None) -> Iterator[StubEndpoint]:
    state = StubEndpoint(host=host, redirect_to=redirect_to)

    class Handler(JsonHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.read_body()
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            if state.redirect_to:
                self.send_response(307)
                self.send_header("Location", state.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_json(200, ANSWER)

    with serving(Handler, host) as base_url:
        state.base_url = base_url
        yield state


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"), ("2002:7f00:1::", "loopback"),
        ("0.0.0.0", "unspecified"), ("::", "unspecified"),
        ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
        ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("10.0.0.1", "private"), ("172.16.0.1", "private"), ("192.168.1.1", "private"), ("fc00::1", "private"),
        ("224.0.0.1", "multicast"), ("ff02::1", "multicast"), ("100.64.0.1", "not a public"),
    ],
)
def test_non_public_addresses_are_refused(address: str, kind: str) -> None:
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_the_allow_list_opens_networks_but_never_metadata() -> None:
    allow = parse_networks("10.0.0.0/8, 127.0.0.1/32,fd00::/8")
    assert refusal(ipaddress.ip_address("10.2.3.4"), allow) is None
    assert refusal(ipaddress.ip_address("127.0.0.1"), allow) is None
    assert refusal(ipaddress.ip_address("::ffff:10.2.3.4"), allow) is None
    assert "loopback" in refusal(ipaddress.ip_address("127.0.0.2"), allow)
    assert "metadata" in refusal(ipaddress.ip_address("fd00:ec2::254"), allow)
    with pytest.raises(ValueError):
        parse_networks("not-a-network")


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://localhost:9/", "is a loopback address"),
        ("http://[::1]:9/", "::1 is a loopback address"),
        ("http://0.0.0.0:9/", "0.0.0.0 is an unspecified address"),
        ("http://2130706433:9/", "127.0.0.1 is a loopback address"),  # decimal spelling
        ("http://[::ffff:127.0.0.1]:9/", "127.0.0.1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata address"),
    ],
)
async def test_real_connections_to_non_public_hosts_are_refused(url: str, shown: str) -> None:
    async with guarded_client() as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get(url)
    assert isinstance(caught.value.__cause__, EgressRefused)
    assert f"refused by the egress policy: {shown}" in str(caught.value) or shown in str(caught.value)


async def test_the_octal_spelling_is_resolved_and_refused() -> None:
    # httpx rejects "0177.0.0.1" in a URL; the resolver (inet_aton) reads it as 127.0.0.1.
    with pytest.raises(EgressRefused, match="127.0.0.1 is a loopback address"):
        await GuardedNetworkBackend().connect_tcp("0177.0.0.1", 9)


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    def __init__(self) -> None:
        self.hosts: list[str] = []

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        self.hosts.append(host)
        raise httpcore.ConnectError("no network in tests")

    async def connect_unix_socket(self, path, timeout=None, socket_options=None):
        raise AssertionError("never")

    async def sleep(self, seconds: float) -> None:
        return None


async def test_dns_rebinding_is_caught_at_connection_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that was public when checked and resolves to loopback later is refused when it does."""
    answers = iter(["93.184.215.14", "127.0.0.1"])

    def rebinding(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    inner = _RecordingBackend()
    backend = GuardedNetworkBackend(inner=inner)
    with pytest.raises(httpcore.ConnectError, match="no network"):
        await backend.connect_tcp("rebind.example", 443)
    assert inner.hosts == ["93.184.215.14"]  # the checked address, never the name resolved again
    with pytest.raises(EgressRefused, match="127.0.0.1 is a loopback address"):
        await backend.connect_tcp("rebind.example", 443)
    assert inner.hosts == ["93.184.215.14"]


async def test_one_bad_address_among_several_refuses_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    def mixed(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("8.8.8.8", port)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", mixed)
    with pytest.raises(EgressRefused, match="::1 is a loopback address"):
        await resolve_checked("mixed.example", 443)


async def test_a_public_model_on_loopback_fails_with_a_clear_error_and_no_retry() -> None:
    with stub_endpoint() as stub:
        pool = BackendPool(egress_allow="")
        try:
            backend = pool.get(stub.config(egress="public", max_retries=3, api_key="sk-own"))
            with pytest.raises(RequestRejected, match="refused by the egress policy: 127.0.0.1 is a loopback"):
                await backend.generate([Message("user", "hi")], SamplingParams(max_tokens=4))
        finally:
            await pool.aclose()
    assert stub.headers == []


async def test_allow_listed_loopback_is_reached_and_redirects_are_not_followed() -> None:
    with stub_endpoint(host="127.0.0.2") as inner, stub_endpoint(redirect_to=inner.base_url + "/chat/completions") as outer:
        pool = BackendPool(egress_allow="127.0.0.1/32")
        try:
            backend = pool.get(outer.config(egress="public"))
            with pytest.raises(RequestRejected, match="HTTP 307"):
                await backend.generate([Message("user", "hi")], SamplingParams(max_tokens=4))
            outer.redirect_to = None
            result = await backend.generate([Message("user", "hi")], SamplingParams(max_tokens=4))
        finally:
            await pool.aclose()
    assert result.text == "hi" and len(outer.headers) == 2
    assert inner.headers == []  # the redirect target never heard of it


async def test_admin_models_may_reach_loopback() -> None:
    with stub_endpoint() as stub:
        pool = BackendPool(egress_allow="")
        try:
            result = await pool.get(stub.config()).generate([Message("user", "hi")], SamplingParams(max_tokens=4))
        finally:
            await pool.aclose()
    assert result.text == "hi"


def test_a_public_endpoint_never_takes_a_server_side_key() -> None:
    from pydantic import ValidationError

    from inference import parse_backend_config

    base = {"kind": "openai", "base_url": "https://api.example.com/v1", "model": "m", "egress": "public"}
    for source in ({"api_key_env": "LIBRA_DATABASE_URL"}, {"api_key_file": "/etc/shadow"}):
        with pytest.raises(ValidationError, match="egress 'public'"):
            parse_backend_config({**base, **source})
    assert parse_backend_config({**base, "api_key": "sk-x"}).api_key.get_secret_value() == "sk-x"


async def test_one_endpoint_serves_both_a_checked_and_an_unchecked_model_apart() -> None:
    """Clients are kept per endpoint and per check: a maintainer's model and a submitted one on the same
    endpoint never share a client, so the submitted one is still refused and the maintainer's still served."""
    with stub_endpoint() as stub:
        pool = BackendPool(egress_allow="")
        try:
            own = pool.get(stub.config())
            assert (await own.generate([Message("user", "hi")], SamplingParams(max_tokens=4))).text == "hi"
            with pytest.raises(RequestRejected, match="refused by the egress policy"):
                await pool.get(stub.config(egress="public")).generate([Message("user", "hi")],
                                                                      SamplingParams(max_tokens=4))
            assert (await pool.get(stub.config()).generate([Message("user", "hi")],
                                                           SamplingParams(max_tokens=4))).text == "hi"
        finally:
            await pool.aclose()
    assert len(stub.headers) == 2


async def test_each_endpoint_has_its_own_client_and_closing_the_pool_closes_them() -> None:
    """httpcore's pool checks every connection it keeps at each request, so a client per endpoint keeps
    that check to the endpoint's own connections (white-box: the backends' clients)."""
    with stub_endpoint() as first, stub_endpoint(host="127.0.0.2") as second:
        pool = BackendPool(egress_allow="")
        try:
            a, again, b = pool.get(first.config()), pool.get(first.config(model="other")), pool.get(second.config())
            for backend in (a, b):
                await backend.generate([Message("user", "hi")], SamplingParams(max_tokens=4))
            clients = {id(backend._client) for backend in (a, again, b)}
            assert a._client is again._client and len(clients) == 2
            opened = []
            for backend in (a, b):
                async with backend._client.borrowed() as http:
                    opened.append(http)
        finally:
            await pool.aclose()
    assert all(http.is_closed for http in opened)
