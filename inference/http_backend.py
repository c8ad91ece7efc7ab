"""OpenAI-compatible endpoints over HTTP: vLLM's server, llama.cpp's, hosted APIs.

Retries happen only before any text was received: retrying a stream that
broke half-way would send the user a second, different beginning. A stream
that breaks raises `IncompleteGeneration` with the partial text instead.
"""

from __future__ import annotations

import asyncio
import codecs
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from inference.config import OpenAIConfig
from inference.egress import EgressRefused
from inference.errors import (
    BackendUnavailable,
    ContextTooLong,
    IncompleteGeneration,
    InferenceError,
    InferenceTimeout,
    RateLimited,
    RequestRejected,
)
from inference.http_clients import EndpointClient
from inference.protocol import BaseBackend, Conversation, validate_conversation
from inference.retry import RETRY_STATUSES, Backoff, parse_retry_after
from inference.stream import StreamEnd, StreamEvent
from inference.types import FinishReason, GenerationResult, Message, SamplingParams

logger = logging.getLogger(__name__)

_CONTEXT_HINTS = ("context_length_exceeded", "maximum context length", "context window", "too many tokens")


class OpenAIBackend(BaseBackend):
    """A chat model behind `/v1/chat/completions`, streaming (SSE) or not."""

    def __init__(
        self,
        config: OpenAIConfig,
        client: EndpointClient,
        limit: asyncio.Semaphore,
        api_key: SecretStr | None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self._client = client
        self._limit = limit
        self._api_key = api_key
        self._rng = rng or random.Random()
        self._backoff = Backoff(config.backoff_base_s, config.backoff_max_s, config.max_retries)
        self.batch_concurrency = config.max_concurrency

    @property
    def name(self) -> str:
        return f"openai:{self.config.base_url.host}/{self.config.model}"

    async def generate(self, messages: Conversation, params: SamplingParams) -> GenerationResult:
        """Non-streaming: one JSON answer, cheaper than SSE for batch work."""
        validate_conversation(messages)
        params = self.config.sampling.apply(params)
        started = time.perf_counter()
        async with self._limit, self._client.borrowed() as client:
            response = await self._send(client, self._body(messages, params, stream=False))
            try:
                payload = await _read_json(response)
            finally:
                await response.aclose()
        return _result_from_payload(payload, time.perf_counter() - started, _text_limit(params))

    async def _events(self, messages: list[Message], params: SamplingParams) -> AsyncIterator[StreamEvent]:
        params = self.config.sampling.apply(params)
        async with self._limit, self._client.borrowed() as client:
            response = await self._send(client, self._body(messages, params, stream=True))
            try:
                # Some OpenAI-compatible servers ignore "stream": true and answer one JSON document:
                # read it as a stream of one chunk rather than failing the answer.
                if response.headers.get("content-type", "").startswith("application/json"):
                    events = _one_chunk(_result_from_payload(await _read_json(response), 0.0, _text_limit(params)))
                else:
                    events = _sse_events(response, _text_limit(params))
                async for event in events:
                    yield event
            finally:
                await response.aclose()

    def _body(self, messages: Sequence[Message], params: SamplingParams, *, stream: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": [m.as_dict() for m in messages],
            "temperature": params.temperature,
            "top_p": params.top_p,
            "max_tokens": params.max_tokens,
            "stream": stream,
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if stream:
            body["stream_options"] = {"include_usage": True}
        return body

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self._api_key is not None:
            headers["Authorization"] = f"Bearer {self._api_key.get_secret_value()}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        return httpx.Timeout(self.config.timeout_s, connect=min(self.config.timeout_s, 10.0))

    async def _send(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response:
        """POST with retries; returns an open response with status 200."""
        attempt = 0
        while True:
            outcome = await self._attempt(client, body)
            if isinstance(outcome, httpx.Response):
                return outcome
            if not outcome.retry or attempt >= self.config.max_retries:
                raise outcome.error
            delay = self._backoff.delay(attempt, self._rng, outcome.retry_after_s)
            logger.warning(
                "inference.http.retry",
                extra={
                    "endpoint": self.name,
                    "attempt": attempt + 1,
                    "error_code": outcome.error.code,
                    "delay_s": round(delay, 3),
                },
            )
            await asyncio.sleep(delay)
            attempt += 1

    async def _attempt(self, client: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response | _Failure:
        request = client.build_request(
            "POST", self.config.chat_url, json=body, headers=self._headers(), timeout=self._timeout()
        )
        try:
            response = await client.send(request, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            if isinstance(exc.__cause__, EgressRefused):  # a policy decision: trying again changes nothing
                return _Failure(RequestRejected(f"cannot connect to {self.name}: {exc.__cause__}"))
            return _Failure(
                BackendUnavailable(f"cannot connect to {self.name}: {type(exc).__name__}"), retry=True
            )
        except httpx.TimeoutException:
            # The server took the request and went quiet: trying again would double its load.
            return _Failure(InferenceTimeout(f"{self.name} did not answer within {self.config.timeout_s} s"))
        except httpx.TransportError as exc:  # the connection dropped before any answer
            return _Failure(
                BackendUnavailable(f"{self.name} dropped the connection: {type(exc).__name__}"), retry=True
            )
        if response.status_code == 200:
            return response
        return await _failure_from(self.name, response)


@dataclass(frozen=True, slots=True)
class _Failure:
    error: InferenceError
    retry: bool = False
    retry_after_s: float | None = None


# The most of a response read, counted after decoding (so a compressed bomb counts at its real size):
# an endpoint that ignores max_tokens or never stops cannot fill the server's memory, or its database
# with one answer. OpenAI's stream spends about 250 bytes a token, so an answer has room for about 30k.
RESPONSE_LIMIT_BYTES = 8 * 1024 * 1024
ERROR_BODY_LIMIT_BYTES = 65_536  # an error's body: only its first 300 characters are kept


async def _read_at_most(response: httpx.Response, limit: int) -> tuple[bytes, bool]:
    """The body, or its first `limit` bytes and False when it is longer (the rest is never read)."""
    body = bytearray()
    async for part in response.aiter_bytes():
        body += part
        if len(body) > limit:
            return bytes(body[:limit]), False
    return bytes(body), True


def _too_long(limit: int) -> IncompleteGeneration:
    return IncompleteGeneration(f"the answer passed the response limit of {limit // (1024 * 1024)} MiB")


async def _failure_from(endpoint: str, response: httpx.Response) -> _Failure:
    try:
        text = (await _read_at_most(response, ERROR_BODY_LIMIT_BYTES))[0].decode("utf-8", errors="replace")
    except httpx.HTTPError:
        text = ""
    finally:
        await response.aclose()
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    error = _status_error(endpoint, response.status_code, text, retry_after)
    return _Failure(error, retry=response.status_code in RETRY_STATUSES, retry_after_s=retry_after)


def _status_error(endpoint: str, status: int, text: str, retry_after: float | None) -> InferenceError:
    message = f"{endpoint} answered HTTP {status}: {_error_message(text)}"
    if status == 429:
        return RateLimited(message, retry_after_s=retry_after)
    if status in (400, 413, 422) and any(hint in text.lower() for hint in _CONTEXT_HINTS):
        return ContextTooLong(message)
    if status == 408 or status == 504:
        return InferenceTimeout(message)
    if status >= 500:
        return BackendUnavailable(message)
    return RequestRejected(message)


def _error_message(text: str) -> str:
    """The server's own error message, shortened; never the request."""
    try:
        payload = json.loads(text)
        error = payload.get("error", payload) if isinstance(payload, dict) else payload
        message = error.get("message", text) if isinstance(error, dict) else str(error)
    except (json.JSONDecodeError, AttributeError):
        message = text
    return str(message).strip()[:300] or "(no body)"


async def _read_json(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body, whole = await _read_at_most(response, RESPONSE_LIMIT_BYTES)
        if not whole:
            raise _too_long(RESPONSE_LIMIT_BYTES)
        return json.loads(body)
    except httpx.TimeoutException as exc:
        raise InferenceTimeout(f"timed out reading the answer: {type(exc).__name__}") from None
    except (httpx.HTTPError, json.JSONDecodeError) as exc:
        raise IncompleteGeneration(f"unreadable answer: {type(exc).__name__}") from None


# An endpoint may ignore max_tokens. What it sends past this many characters a token is cut, and the
# answer ends as if at its token limit ("length"): tokens average about 4 characters, so no answer within
# its limit comes near, and what is stored (the arena's answers, evaluation rows) stays bounded by it.
CHARS_PER_TOKEN_LIMIT = 32


def _text_limit(params: SamplingParams) -> int:
    return max(1, params.max_tokens) * CHARS_PER_TOKEN_LIMIT


def _result_from_payload(payload: Mapping[str, Any], latency_s: float, text_limit: int) -> GenerationResult:
    try:
        choice = payload["choices"][0]
        text = choice["message"].get("content") or ""
        if not isinstance(text, str):
            raise TypeError
    except (KeyError, IndexError, TypeError, AttributeError):
        raise IncompleteGeneration("the answer has no choices[0].message") from None
    usage = payload.get("usage") or {}
    cut = len(text) > text_limit
    return GenerationResult(
        text=text[:text_limit],
        finish_reason="length" if cut else _finish(choice.get("finish_reason")),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        completion_tokens=int(usage.get("completion_tokens") or 0),
        latency_s=latency_s,
        ttft_s=None,
        complete=True,
    )


async def _one_chunk(result: GenerationResult) -> AsyncIterator[StreamEvent]:
    if result.text:
        yield result.text
    yield StreamEnd(result.finish_reason, result.prompt_tokens, result.completion_tokens)


async def _sse_events(response: httpx.Response, text_limit: int) -> AsyncIterator[StreamEvent]:
    """Text chunks of an OpenAI SSE stream, then its StreamEnd. The chunks that arrived together (one
    read from the connection) go on as one piece: each piece passes several async generators on its way
    to the arena's stream, and a fast backend sends many tokens a read (tests/inference/test_inference_http.py).
    Text past `text_limit` characters is cut and the stream left: the answer ends at "length"."""
    finish: str | None = None
    usage: Mapping[str, Any] = {}
    chunks, done, left = 0, False, text_limit
    async for arrived in _sse_data(response):
        texts = []
        for data in arrived:
            if data == "[DONE]":  # the last data: _sse_data reads the body to its end and stops
                done = True
                continue
            payload = _parse_chunk(data)
            usage = payload.get("usage") or usage
            for choice in payload.get("choices") or ():
                content = (choice.get("delta") or {}).get("content")
                if content:
                    chunks += 1
                    texts.append(content)
                finish = choice.get("finish_reason") or finish
        if texts:
            piece = texts[0] if len(texts) == 1 else "".join(texts)
            if len(piece) > left:  # the endpoint ignored max_tokens: what was asked for is all it gets
                yield piece[:left]
                yield StreamEnd("length", prompt_tokens=int(usage.get("prompt_tokens") or 0), completion_tokens=chunks)
                return
            left -= len(piece)
            yield piece
    if not done and finish is None:
        raise IncompleteGeneration("the stream ended before the answer was complete")
    yield StreamEnd(
        _finish(finish),
        prompt_tokens=int(usage.get("prompt_tokens") or 0),
        # Without usage, one chunk per token is what OpenAI-style servers send.
        completion_tokens=int(usage.get("completion_tokens") or chunks),
    )


async def _sse_data(response: httpx.Response) -> AsyncIterator[list[str]]:
    """The data of the events whose lines arrived together, one list per read, up to and including
    ``[DONE]``; then the rest of the body is read and dropped (`_drain`), so that the connection goes back
    to the client's pool. SSE is UTF-8, and its lines end in LF, CRLF or CR. At most
    RESPONSE_LIMIT_BYTES are read."""
    parts = response.aiter_bytes()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    # The reads of a line not ended yet, joined once its end arrives: joining them at every read made an
    # 8 MiB line without a break cost 0.99 s of the event loop's CPU, against 0.005 s (docs/security.md).
    pending: list[str] = []
    received = 0  # bytes so far
    try:
        async for part in parts:
            received += len(part)
            if received > RESPONSE_LIMIT_BYTES:
                raise _too_long(RESPONSE_LIMIT_BYTES)
            text = decoder.decode(part)
            if "\n" not in text and "\r" not in text:
                pending.append(text)
                continue
            lines = ("".join(pending) + text).replace("\r\n", "\n").replace("\r", "\n").split("\n")
            pending = [lines.pop()]
            arrived = [line[5:].strip() for line in lines if line.startswith("data:")]
            if "[DONE]" in arrived:
                yield arrived[:arrived.index("[DONE]") + 1]
                await _drain(parts)
                return
            if arrived:
                yield arrived
        last = "".join(pending)
        if last.startswith("data:"):  # the body ended without a final line break
            yield [last[5:].strip()]
    except httpx.TimeoutException:
        raise InferenceTimeout("the stream stalled past the read timeout") from None
    except httpx.HTTPError as exc:
        raise IncompleteGeneration(f"the stream broke: {type(exc).__name__}") from None


# What is read after [DONE] before the connection is given up: the end of a chunked body is a few bytes
# and is usually in the same packet. A response closed unread closes its connection, so without this every
# streamed answer paid a new TCP (and TLS) handshake (measured: one connection per answer against a local
# endpoint); a server that keeps talking past [DONE] is cut off and its connection closed, as before.
DRAIN_LIMIT_BYTES = 65_536
DRAIN_TIMEOUT_S = 0.5


async def _drain(parts: AsyncIterator[bytes]) -> None:
    read = 0
    try:
        async with asyncio.timeout(DRAIN_TIMEOUT_S):
            async for part in parts:
                read += len(part)
                if read > DRAIN_LIMIT_BYTES:
                    return
    except (TimeoutError, httpx.HTTPError):  # the answer is complete: a broken tail changes nothing
        return


def _parse_chunk(data: str) -> Mapping[str, Any]:
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        raise IncompleteGeneration("the stream sent a malformed event") from None
    if not isinstance(payload, dict):
        raise IncompleteGeneration("the stream sent a malformed event")
    if "error" in payload:
        raise IncompleteGeneration(f"the backend failed mid-stream: {_error_message(data)}")
    return payload


def _finish(reason: object) -> FinishReason:
    return "length" if reason == "length" else "stop"
