"""The OpenAI-compatible client against real servers on loopback.

`build_app` (the server behind `libra serve-model`) serves a scripted backend;
a small Starlette app plays a flaky endpoint for the retry tests.
"""

from __future__ import annotations

import asyncio
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
