"""The OpenAI-compatible client against real servers on loopback.

`build_app` (the server behind `libra serve-model`) serves a scripted backend;
a small Starlette app plays a flaky endpoint for the retry tests.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from inference import (
    BackendPool,
    BackendUnavailable,
    ContextTooLong,
    IncompleteGeneration,
    InferenceTimeout,
    Message,
    OpenAIConfig,
    RateLimited,
    RequestRejected,
    SamplingParams,
    http_backend,
    parse_backend_config,
)
from inference.credentials import resolve_api_key
from inference.openai_server import build_app
from inference.retry import Backoff, parse_retry_after

QUESTION = [Message("system", "Be brief."), Message("user", "Say hello.")]
FAST_RETRY = {"backoff_base_s": 0.01, "backoff_max_s": 0.05}


def _config(base_url: str, **extra: Any) -> dict[str, Any]:
    return {"kind": "openai", "base_url": base_url, "model": "scripted", **FAST_RETRY, **extra}


# --- the real server and client, end to end -------------------------------------------------


@pytest.mark.asyncio
async def test_non_streaming_round_trip(scripted: Any, serve: Any) -> None:
    backend = scripted()
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool()
        try:
            result = await pool.get(_config(url)).generate(QUESTION, SamplingParams(temperature=0.1, seed=3))
        finally:
            await pool.aclose()
    assert result.text == "Hello, world!"
    assert (result.finish_reason, result.complete) == ("stop", True)
    assert (result.prompt_tokens, result.completion_tokens) == (6, 4)
    messages, params = backend.seen[0]
    assert messages == QUESTION
    assert (params.temperature, params.seed) == (0.1, 3)
    # Fields the client did not send stay unset, so a model's own defaults can apply.
    assert params.model_fields_set >= {"temperature", "seed"}


@pytest.mark.asyncio
async def test_streaming_round_trip_with_usage(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(delay_s=0.01), "scripted")) as url:
        pool = BackendPool()
        try:
            stream = pool.get(_config(url)).stream(QUESTION, SamplingParams(max_tokens=3, stop=("zz",)))
            chunks = [chunk async for chunk in stream]
        finally:
            await pool.aclose()
    assert chunks == ["Hello", ", ", "world"]
    result = stream.result
    assert (result.text, result.finish_reason, result.completion_tokens) == ("Hello, world", "length", 3)
    assert result.ttft_s is not None and result.ttft_s <= result.latency_s


@pytest.mark.asyncio
async def test_backend_dying_mid_stream_keeps_partial_text(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(fail_after=2), "scripted")) as url:
        pool = BackendPool()
        try:
            stream = pool.get(_config(url)).stream(QUESTION, SamplingParams())
            with pytest.raises(IncompleteGeneration) as caught:
                async for _ in stream:
                    pass
        finally:
            await pool.aclose()
    assert caught.value.partial_text == "Hello, "
    assert stream.result.complete is False and stream.result.text == "Hello, "


@pytest.mark.asyncio
async def test_errors_before_the_first_chunk_keep_their_type(scripted: Any, serve: Any) -> None:
    backend = scripted(error=ContextTooLong("prompt of 9000 tokens; window 2048"))
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool()
        try:
            client = pool.get(_config(url))
            with pytest.raises(ContextTooLong):
                await client.generate(QUESTION, SamplingParams())
            with pytest.raises(ContextTooLong):
                await client.stream(QUESTION, SamplingParams()).collect()
            with pytest.raises(RequestRejected):  # a wrong model name is not worth retrying
                await pool.get(_config(url, model="other")).generate(QUESTION, SamplingParams())
        finally:
            await pool.aclose()
    assert len(backend.seen) == 2


@pytest.mark.asyncio
async def test_models_endpoint_lists_the_served_model(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(), "smollm2-135m")) as url:
        async with httpx.AsyncClient() as client:
            listing = (await client.get(f"{url}/models")).json()
            bad = await client.post(
                f"{url}/chat/completions", json={"model": "smollm2-135m", "messages": "x"}
            )
    assert [m["id"] for m in listing["data"]] == ["smollm2-135m"]
    assert bad.status_code == 422


@pytest.mark.asyncio
async def test_concurrency_limit_per_endpoint(scripted: Any, serve: Any) -> None:
    backend = scripted(delay_s=0.02)
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool()
        try:
            # Two model configs on one endpoint share its limit.
            first = pool.get(_config(url, max_concurrency=2))
            second = pool.get(_config(url, max_concurrency=2, timeout_s=30))
            calls = [b.generate(QUESTION, SamplingParams()) for b in (first, second) for _ in range(4)]
            results = await asyncio.gather(*calls)
        finally:
            await pool.aclose()
    assert all(r.text == "Hello, world!" for r in results)
    assert backend.peak <= 2


@pytest.mark.asyncio
async def test_a_submitted_config_cannot_set_the_limit_of_the_maintainers_endpoint(scripted: Any, serve: Any) -> None:
    """A submitter who registers the maintainers' endpoint URL with max_concurrency 1 (or 256) gets a limit
    of their own: the first config built no longer sets the endpoint's limit for every model served there."""
    backend = scripted(delay_s=0.05)
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool(egress_allow="127.0.0.1/32")
        try:
            submitted = pool.get(_config(url, max_concurrency=1, egress="public"))
            own = pool.get(_config(url, max_concurrency=3))
            await asyncio.gather(*(own.generate(QUESTION, SamplingParams()) for _ in range(6)))
            assert backend.peak == 3
            backend.peak = 0
            await asyncio.gather(*(submitted.generate(QUESTION, SamplingParams()) for _ in range(3)))
            assert backend.peak == 1
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_a_changed_max_concurrency_takes_effect_and_each_key_has_its_own_limit(scripted: Any,
                                                                                    serve: Any) -> None:
    backend = scripted(delay_s=0.05)
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool()
        try:
            before = pool.get(_config(url, max_concurrency=2))
            after = pool.get(_config(url, max_concurrency=4))  # an admin raised it; `before` is still in use
            await asyncio.gather(*(after.generate(QUESTION, SamplingParams()) for _ in range(8)))
            assert backend.peak == 4
            backend.peak = 0
            await asyncio.gather(*(before.generate(QUESTION, SamplingParams()) for _ in range(4)))
            assert backend.peak == 2
            backend.peak = 0
            # Two accounts at one provider: its limits are per key, so are ours.
            first, second = (pool.get(_config(url, max_concurrency=1, api_key=key)) for key in ("k-one", "k-two"))
            await asyncio.gather(*(b.generate(QUESTION, SamplingParams()) for b in (first, second) for _ in range(2)))
            assert backend.peak == 2
            assert len(pool._limits) == 4
            del before, after, first, second
            assert not pool._limits  # a limit no backend holds is not kept for the process's life
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_slow_backend_times_out(scripted: Any, serve: Any) -> None:
    with serve(build_app(scripted(delay_s=1.0), "scripted")) as url:
        pool = BackendPool()
        try:
            with pytest.raises(InferenceTimeout):
                await pool.get(_config(url, timeout_s=0.2)).stream(QUESTION, SamplingParams()).collect()
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_client_leaving_stops_the_server_side_generation(scripted: Any, serve: Any) -> None:
    backend = scripted(chunks=tuple(f"w{i} " for i in range(200)), delay_s=0.01)
    with serve(build_app(backend, "scripted")) as url:
        pool = BackendPool()
        try:
            async with pool.get(_config(url)).stream(QUESTION, SamplingParams()) as stream:
                async for _ in stream:
                    break
        finally:
            await pool.aclose()
        for _ in range(200):
            if backend.closed_early:
                break
            await asyncio.sleep(0.01)
    assert backend.closed_early == 1


# --- retries against a flaky endpoint ---------------------------------------------------------


class Flaky:
    """A real endpoint that answers with a scripted sequence of statuses."""

    def __init__(self, plan: list[int | str], *, retry_after: str = "0", body: str = "") -> None:
        self.plan = plan
        self.retry_after = retry_after
        self.body = body
        self.calls = 0
        self.auth: list[str | None] = []

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        self.auth.append(request.headers.get("authorization"))
        payload = await request.json()
        step = self.plan[min(self.calls, len(self.plan) - 1)]
        self.calls += 1
        if step == "ok":
            return _ok(payload)
        if step == "json":  # a server that ignores "stream": true
            return _ok({**payload, "stream": False})
        if step == "drop":
            return StreamingResponse(_dropping_stream(), media_type="text/event-stream")
        headers = {"Retry-After": self.retry_after} if step == 429 else {}
        return JSONResponse({"error": {"message": self.body or f"status {step}"}}, int(step), headers=headers)


def _ok(payload: dict[str, Any]) -> Response:
    if payload.get("stream"):
        frames = [
            {"choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
        ]
        text = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
        return Response(text, media_type="text/event-stream")
    message = {"role": "assistant", "content": "fine"}
    usage = {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
    return JSONResponse(
        {"choices": [{"index": 0, "message": message, "finish_reason": "stop"}], "usage": usage}
    )


async def _dropping_stream() -> AsyncIterator[str]:
    yield 'data: {"choices": [{"index": 0, "delta": {"content": "par"}}]}\n\n'
    await asyncio.sleep(0.05)
    yield 'data: {"choices": [{"index": 0, "delta": {"content": "tial"}}]}\n\n'
    await asyncio.sleep(0.05)
    raise RuntimeError("the server process died")  # uvicorn aborts the connection


async def _call(serve: Any, flaky: Flaky, stream: bool = False, **extra: Any) -> Any:
    with serve(flaky.app()) as url:
        pool = BackendPool(environ=extra.pop("environ", None))
        try:
            backend = pool.get(_config(url, **extra))
            if stream:
                return await backend.stream(QUESTION, SamplingParams()).collect()
            return await backend.generate(QUESTION, SamplingParams())
        finally:
            await pool.aclose()


@pytest.mark.asyncio
async def test_retries_429_and_5xx_then_succeeds(serve: Any) -> None:
    flaky = Flaky([429, 500, 503, "ok"])
    result = await _call(serve, flaky)
    assert result.text == "fine" and flaky.calls == 4


@pytest.mark.asyncio
async def test_streaming_request_is_retried_before_any_text(serve: Any) -> None:
    flaky = Flaky([502, "ok"])
    result = await _call(serve, flaky, stream=True)
    assert result.text == "fine" and flaky.calls == 2


@pytest.mark.asyncio
async def test_a_server_that_ignores_stream_true_is_read_as_one_chunk(serve: Any) -> None:
    result = await _call(serve, Flaky(["json"]), stream=True)
    assert result.text == "fine" and result.finish_reason == "stop" and result.completion_tokens == 1


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("plan", "error", "calls"),
    [
        ([503], BackendUnavailable, 3),
        ([429], RateLimited, 3),
        ([400], RequestRejected, 1),
        ([401], RequestRejected, 1),
    ],
)
async def test_gives_up_with_a_typed_error(
    serve: Any, plan: list[int | str], error: type, calls: int
) -> None:
    flaky = Flaky(plan)
    with pytest.raises(error):
        await _call(serve, flaky, max_retries=2)
    assert flaky.calls == calls


@pytest.mark.asyncio
async def test_context_length_answer_becomes_context_too_long(serve: Any) -> None:
    flaky = Flaky([400], body="This model's maximum context length is 2048 tokens, you requested 9000")
    with pytest.raises(ContextTooLong):
        await _call(serve, flaky)
    assert flaky.calls == 1


@pytest.mark.asyncio
async def test_rate_limit_carries_retry_after(serve: Any) -> None:
    flaky = Flaky([429], retry_after="0.02")
    with pytest.raises(RateLimited) as caught:
        await _call(serve, flaky, max_retries=0)
    assert caught.value.retry_after_s == pytest.approx(0.02)


@pytest.mark.asyncio
async def test_connection_refused_is_retried_then_unavailable(closed_port: int) -> None:
    pool = BackendPool()
    try:
        backend = pool.get(_config(f"http://127.0.0.1:{closed_port}/v1", max_retries=2))
        with pytest.raises(BackendUnavailable):
            await backend.generate(QUESTION, SamplingParams())
    finally:
        await pool.aclose()


@pytest.mark.asyncio
async def test_connection_dropped_mid_stream_is_incomplete_not_retried(serve: Any) -> None:
    flaky = Flaky(["drop", "ok"])
    with pytest.raises(IncompleteGeneration) as caught:
        await _call(serve, flaky, stream=True)
    assert caught.value.partial_text == "partial"
    assert flaky.calls == 1


def test_backoff_is_jittered_capped_and_honours_retry_after() -> None:
    backoff = Backoff(base_s=0.5, max_s=4.0, max_retries=5)
    rng = random.Random(0)
    for attempt in range(8):
        assert 0.0 <= backoff.delay(attempt, rng) <= min(4.0, 0.5 * 2**attempt)
    assert backoff.delay(0, rng, retry_after_s=3.0) >= 3.0
    assert backoff.delay(0, rng, retry_after_s=600.0) == 4.0
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None


# --- API keys ------------------------------------------------------------------------------------

SECRET = "sk-test-DO-NOT-LOG-1234567890"


@pytest.mark.asyncio
async def test_api_key_from_environment_is_sent_and_never_logged(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = Flaky([500, "ok"])
    with caplog.at_level(logging.DEBUG):
        await _call(serve, flaky, api_key_env="LIBRA_TEST_KEY", environ={"LIBRA_TEST_KEY": SECRET})
    assert flaky.auth == [f"Bearer {SECRET}"] * 2
    assert any(r.getMessage() == "inference.http.retry" for r in caplog.records)
    assert all(SECRET not in json.dumps(r.__dict__, default=str) for r in caplog.records)


@pytest.mark.asyncio
async def test_api_key_from_a_secret_file(serve: Any, tmp_path: Path) -> None:
    key_file = tmp_path / "key"
    key_file.write_text(SECRET + "\n")
    flaky = Flaky(["ok"])
    await _call(serve, flaky, api_key_file=str(key_file))
    assert flaky.auth == [f"Bearer {SECRET}"]


@pytest.mark.asyncio
async def test_missing_key_names_its_source_not_a_value(tmp_path: Path) -> None:
    pool = BackendPool(environ={})
    try:
        with pytest.raises(BackendUnavailable, match="LIBRA_MISSING_KEY"):
            pool.get(_config("http://127.0.0.1:9/v1", api_key_env="LIBRA_MISSING_KEY"))
        with pytest.raises(BackendUnavailable, match="key file"):
            pool.get(_config("http://127.0.0.1:9/v1", api_key_file=str(tmp_path / "absent")))
    finally:
        await pool.aclose()


def test_key_is_not_in_the_backend_repr() -> None:
    config = parse_backend_config(_config("http://127.0.0.1:9/v1", api_key_env="K"))
    assert isinstance(config, OpenAIConfig)
    key = resolve_api_key(config, {"K": SECRET})
    assert key is not None and SECRET not in repr(key) and SECRET not in str(key)


# --- connection reuse -----------------------------------------------------------------------------------------


class CountingEndpoint:
    """A real endpoint that streams a short answer and records the client port of each call: the same
    port on every call means one kept-alive connection. ``stall_after_done`` keeps the body open after
    [DONE], as a misbehaving server might."""

    def __init__(self, *, stall_after_done: bool = False) -> None:
        self.ports: list[int] = []
        self.stall_after_done = stall_after_done

    def app(self) -> Starlette:
        return Starlette(routes=[Route("/v1/chat/completions", self.handle, methods=["POST"])])

    async def handle(self, request: Request) -> Response:
        assert request.client is not None
        self.ports.append(request.client.port)
        await request.body()
        return StreamingResponse(self._events(), media_type="text/event-stream")

    async def _events(self) -> AsyncIterator[str]:
        yield 'data: {"choices": [{"index": 0, "delta": {"content": "fine"}, "finish_reason": "stop"}]}\n\n'
        yield "data: [DONE]\n\n"
        if self.stall_after_done:
            await asyncio.sleep(30)


@pytest.mark.asyncio
async def test_streamed_answers_reuse_one_connection(serve: Any) -> None:
    endpoint = CountingEndpoint()
    with serve(endpoint.app()) as url:
        pool = BackendPool()
        try:
            backend = pool.get(_config(url))
            results = [await backend.stream(QUESTION, SamplingParams()).collect() for _ in range(5)]
        finally:
            await pool.aclose()
    assert [r.text for r in results] == ["fine"] * 5
    assert len(set(endpoint.ports)) == 1, f"one connection per answer: client ports {endpoint.ports}"


@pytest.mark.asyncio
async def test_a_server_that_stalls_after_done_still_ends_the_answer(serve: Any) -> None:
    endpoint = CountingEndpoint(stall_after_done=True)
    with serve(endpoint.app()) as url:
        pool = BackendPool()
        try:
            async with asyncio.timeout(10):  # the tail is given up after DRAIN_TIMEOUT_S, not the read timeout
                result = await pool.get(_config(url, timeout_s=60)).stream(QUESTION, SamplingParams()).collect()
        finally:
            await pool.aclose()
    assert (result.text, result.finish_reason, result.complete) == ("fine", "stop", True)


# --- how a stream is read: pieces as they arrive, and a limit on what is read ------------------------------


def _event(content: str, finish: str | None = None, eol: str = "\n") -> str:
    delta = {"content": content} if content else {}
    return f"data: {json.dumps({'choices': [{'index': 0, 'delta': delta, 'finish_reason': finish}]})}{eol}{eol}"


async def _arriving(writes: list[str]) -> AsyncIterator[str]:
    for write in writes:  # each write is one HTTP chunk; the pause keeps it apart from the next on the wire
        yield write
        await asyncio.sleep(0.05)


async def _pieces(serve: Any, app: Starlette, stream: bool = True, max_tokens: int = 256) -> tuple[list[str], Any]:
    params = SamplingParams(max_tokens=max_tokens)
    with serve(app) as url:
        pool = BackendPool()
        try:
            backend = pool.get(_config(url))
            if not stream:
                return [], await backend.generate(QUESTION, params)
            pieces = []
            async with backend.stream(QUESTION, params) as chunks:
                async for piece in chunks:
                    pieces.append(piece)
            return pieces, chunks.result
        finally:
            await pool.aclose()


def _streaming_app(writes: list[str] | AsyncIterator[str], **headers: str) -> Starlette:
    async def chat(request: Request) -> StreamingResponse:
        body = _arriving(writes) if isinstance(writes, list) else writes
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


@pytest.mark.asyncio
async def test_events_that_arrive_together_go_on_as_one_piece_and_split_lines_are_joined(serve: Any) -> None:
    first = _event("Pho") + _event("to") + _event("syn")  # one write: one piece, not three
    split = _event("the", eol="\r\n")  # an event cut in the middle of its line, CRLF line ends
    writes = [first, split[:6], split[6:12], split[12:], _event("sis", "stop", eol="\r") + "data: [DONE]\n\n"]
    pieces, result = await _pieces(serve, _streaming_app(writes))
    assert pieces == ["Photosyn", "the", "sis"]
    assert (result.text, result.finish_reason, result.complete) == ("Photosynthesis", "stop", True)
    assert result.completion_tokens == 5  # no usage sent: one chunk per token, counted before joining


@pytest.mark.asyncio
async def test_an_endless_stream_is_cut_at_the_response_limit(serve: Any, monkeypatch: Any) -> None:
    monkeypatch.setattr(http_backend, "RESPONSE_LIMIT_BYTES", 256 * 1024)
    sent = []

    async def endless() -> AsyncIterator[str]:  # ignores max_tokens and never says [DONE]
        while True:
            sent.append(1)
            yield _event("word " * 1000)
            await asyncio.sleep(0)

    with pytest.raises(IncompleteGeneration, match="response limit"):
        async with asyncio.timeout(20):  # not the read timeout (60 s): the reading stops at the limit
            await _pieces(serve, _streaming_app(endless()), max_tokens=32_768)  # the text cut comes later
    # The connection was given up, so the endpoint stops writing once its socket buffers are full.
    for _ in range(100):
        before = len(sent)
        await asyncio.sleep(0.2)
        if len(sent) == before:
            break
    assert len(sent) == before


@pytest.mark.asyncio
@pytest.mark.parametrize("encoding", ["identity", "gzip"])
async def test_an_oversized_answer_is_refused_even_when_it_comes_compressed(serve: Any, monkeypatch: Any,
                                                                            encoding: str) -> None:
    monkeypatch.setattr(http_backend, "RESPONSE_LIMIT_BYTES", 256 * 1024)
    message = {"role": "assistant", "content": "word " * 200_000}  # 1 MB of text
    raw = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]}).encode()
    body = gzip.compress(raw) if encoding == "gzip" else raw
    assert encoding == "identity" or len(body) < 64 * 1024  # the bomb is small on the wire

    async def chat(request: Request) -> Response:
        headers = {"Content-Encoding": "gzip"} if encoding == "gzip" else {}
        return Response(body, media_type="application/json", headers=headers)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with pytest.raises(IncompleteGeneration, match="response limit"):
        await _pieces(serve, app, stream=False, max_tokens=32_768)  # the text cut would come later
    # The same answer within the limit is read whole.
    monkeypatch.setattr(http_backend, "RESPONSE_LIMIT_BYTES", 2 * 1024 * 1024)
    _, result = await _pieces(serve, app, stream=False, max_tokens=32_768)
    assert len(result.text) == 1_000_000


@pytest.mark.asyncio
async def test_an_endless_error_body_is_read_only_as_far_as_its_message(serve: Any) -> None:
    async def endless() -> AsyncIterator[bytes]:
        yield b'{"error": {"message": "bad request"}} '
        while True:
            yield b" " * 65536
            await asyncio.sleep(0)

    async def chat(request: Request) -> StreamingResponse:
        return StreamingResponse(endless(), status_code=400, media_type="application/json")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    with pytest.raises(RequestRejected, match="HTTP 400"):
        async with asyncio.timeout(20):
            await _pieces(serve, app, stream=False)


@pytest.mark.asyncio
@pytest.mark.parametrize("stream", [True, False])
async def test_an_answer_far_past_its_token_limit_is_cut_as_if_at_the_limit(serve: Any, stream: bool) -> None:
    """An endpoint that ignores max_tokens: what is kept is max_tokens x CHARS_PER_TOKEN_LIMIT characters,
    ending at "length", so that it never fills memory or the database."""
    word = "x" * 99 + " "

    async def chat(request: Request) -> Response:
        if not (await request.json()).get("stream"):
            message = {"role": "assistant", "content": word * 100}
            return JSONResponse({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
        return StreamingResponse(_arriving([_event(word) for _ in range(100)] + ["data: [DONE]\n\n"]),
                                 media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    limit = 10 * http_backend.CHARS_PER_TOKEN_LIMIT
    with serve(app) as url:
        pool = BackendPool()
        try:
            backend = pool.get(_config(url))
            params = SamplingParams(max_tokens=10)
            if stream:
                result = await backend.stream(QUESTION, params).collect()
            else:
                result = await backend.generate(QUESTION, params)
            assert (len(result.text), result.finish_reason) == (limit, "length")
            assert result.text == (word * 100)[:limit]
            within = await backend.generate(QUESTION, SamplingParams(max_tokens=10_000))  # 100 x 100 characters
            assert (len(within.text), within.finish_reason) == (10_000, "stop")
        finally:
            await pool.aclose()
