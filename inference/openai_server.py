"""Serve any backend as an OpenAI-compatible endpoint (`libra serve-model`).

An adapter at the edge of the package: the only module that imports FastAPI.
The first chunk is awaited before the response starts, so a failure that
happens before any text (context too long, backend down) still gets a proper
HTTP status; a failure after that is sent as an SSE `error` event and the
stream ends without `[DONE]`, which OpenAI clients read as a broken stream.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from inference.errors import (
    BackendUnavailable,
    ContextTooLong,
    IncompleteGeneration,
    InferenceError,
    InferenceTimeout,
    ModelFileMissing,
    RateLimited,
    RequestRejected,
)
from inference.protocol import Backend
from inference.stream import GenerationStream
from inference.types import GenerationResult, Message, SamplingParams

_STATUS: tuple[tuple[type[InferenceError], int], ...] = (
    (ContextTooLong, 400),
    (RequestRejected, 400),
    (RateLimited, 429),
    (InferenceTimeout, 504),
    (ModelFileMissing, 503),
    (BackendUnavailable, 503),
    (IncompleteGeneration, 502),
)


class _TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "user", "assistant"]
    content: str | list[_TextPart]

    def to_message(self) -> Message:
        content = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)
        return Message(self.role, content)


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """The subset of OpenAI's chat request that maps onto SamplingParams."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessageIn] = Field(min_length=1)
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1

    def sampling(self) -> SamplingParams:
        """Only the fields the client sent, so the model's own defaults fill the rest."""
        fields: dict[str, Any] = {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_completion_tokens or self.max_tokens,
            "seed": self.seed,
            "stop": (self.stop,) if isinstance(self.stop, str) else self.stop,
        }
        return SamplingParams(**{k: v for k, v in fields.items() if v is not None})


def build_app(backend: Backend, model_name: str) -> FastAPI:
    """A FastAPI app with POST /v1/chat/completions and GET /v1/models."""
    app = FastAPI(title=f"Libra model endpoint: {model_name}", docs_url=None, redoc_url=None)
    created = int(time.time())

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        card = {"id": model_name, "object": "model", "created": created, "owned_by": "libra"}
        return {"object": "list", "data": [card]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatRequest) -> JSONResponse | StreamingResponse:
        if request.model != model_name:
            return _error(
                404, f"model {request.model!r} is not served here; use {model_name!r}", "model_not_found"
            )
        try:
            params = request.sampling()
        except ValidationError as error:
            return _error(400, _first_problem(error), "invalid_request_error")
        messages = [m.to_message() for m in request.messages]
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            return await _stream(backend.stream(messages, params), model_name, include_usage)
        try:
            result = await backend.generate(messages, params)
        except InferenceError as error:
            return _inference_error(error)
        return JSONResponse(_completion(result, model_name))

    return app


async def _stream(
    stream: GenerationStream, model: str, include_usage: bool
) -> JSONResponse | StreamingResponse:
    try:
        first: str | None = await stream.__anext__()
    except StopAsyncIteration:
        first = None
    except InferenceError as error:
        await stream.aclose()
        return _inference_error(error)
    frames = _sse_frames(stream, first, _Chunker(model), include_usage)
    return StreamingResponse(frames, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def _sse_frames(
    stream: GenerationStream, first: str | None, chunker: _Chunker, include_usage: bool
) -> AsyncIterator[str]:
    try:
        yield chunker.frame({"role": "assistant", "content": first or ""})
        async for piece in stream:
            yield chunker.frame({"content": piece})
        result = stream.result
        yield chunker.frame({}, finish_reason=result.finish_reason)
        if include_usage:
            yield chunker.usage_frame(result)
        yield "data: [DONE]\n\n"
    except InferenceError as error:
        yield f"data: {json.dumps({'error': _error_body(error)})}\n\n"
    finally:
        # Also runs when the client disconnects: stops the model's work.
        await stream.aclose()


class _Chunker:
    """Builds `chat.completion.chunk` frames that share one id."""

    def __init__(self, model: str) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())

    def frame(self, delta: dict[str, str], finish_reason: str | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return self._data({"choices": [choice]})

    def usage_frame(self, result: GenerationResult) -> str:
        return self._data({"choices": [], "usage": _usage(result)})

    def _data(self, fields: dict[str, Any]) -> str:
        body = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
        }
        return f"data: {json.dumps({**body, **fields}, ensure_ascii=False)}\n\n"


def _completion(result: GenerationResult, model: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": result.text}
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason}],
        "usage": _usage(result),
    }


def _usage(result: GenerationResult) -> dict[str, int]:
    return {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "total_tokens": result.prompt_tokens + result.completion_tokens,
    }


def _inference_error(error: InferenceError) -> JSONResponse:
    status = next((code for kind, code in _STATUS if isinstance(error, kind)), 500)
    headers = {}
    if isinstance(error, RateLimited) and error.retry_after_s is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after_s)))
    return JSONResponse({"error": _error_body(error)}, status_code=status, headers=headers)


def _error_body(error: InferenceError) -> dict[str, Any]:
    kind = "invalid_request_error" if isinstance(error, (ContextTooLong, RequestRejected)) else "server_error"
    return {"message": error.message, "type": kind, "code": error.code}


def _error(status: int, message: str, code: str) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": "invalid_request_error", "code": code}}, status
    )


def _first_problem(error: ValidationError) -> str:
    problem = error.errors()[0]
    return f"{'.'.join(str(p) for p in problem['loc'])}: {problem['msg']}"


async def serve(
    config: Any, model_name: str, *, host: str = "127.0.0.1", port: int = 8001, cache_dir: Path | None = None
) -> None:
    """Run an endpoint for one model config until stopped (used by the CLI)."""
    import uvicorn

    from inference.pool import BackendPool

    pool = BackendPool(cache_dir=cache_dir)
    try:
        app = build_app(pool.get(config), model_name)
        server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
        await server.serve()
    finally:
        await pool.aclose()


def main(argv: list[str] | None = None) -> None:
    """`python -m inference.openai_server --config JSON --model-name NAME --port P`."""
    import argparse
    import asyncio

    from inference.config import parse_backend_config

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--config", required=True, help="the model's backend config as JSON")
    parser.add_argument("--model-name", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args(argv)
    config = parse_backend_config(json.loads(args.config))
    asyncio.run(serve(config, args.model_name, host=args.host, port=args.port))


if __name__ == "__main__":
    main()
