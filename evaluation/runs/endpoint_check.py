"""One short request to a submitted endpoint before its evaluation plans ~1,150 items.

A wrong URL, a bad key or a server that is not OpenAI-compatible would otherwise fail every item in
turn, each after its own retries; the check fails the run at once with the reason instead.
"""

import asyncio
from collections.abc import Mapping
from typing import Any

from core.errors import LibraError
from inference import (
    Backend,
    BackendUnavailable,
    IncompleteGeneration,
    InferenceError,
    InferenceTimeout,
    Message,
    RequestRejected,
    SamplingParams,
)

CHECK_TIMEOUT_S = 15.0
_CHECK_PARAMS = SamplingParams(temperature=0.0, top_p=1.0, max_tokens=1, seed=0)
_PROMPT = [Message("user", "Say OK.")]


def needs_endpoint_check(config: Mapping[str, Any]) -> bool:
    """Submitted endpoints (egress `public`); the server's own models are checked by their operators."""
    return config.get("kind") == "openai" and config.get("egress") == "public"


async def check_endpoint(backend: Backend, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """Raises a LibraError that says why the endpoint cannot be evaluated; returns when it answered."""
    try:
        [answer] = await asyncio.wait_for(backend.generate_batch([_PROMPT], _CHECK_PARAMS), timeout_s)
    except TimeoutError:
        answer = InferenceTimeout(f"no answer within {timeout_s:g} s")
    if isinstance(answer, InferenceError):
        raise LibraError(f"endpoint check failed, {_reason(answer)}; first error: {answer.code}: {answer.message}",
                         code="endpoint_check_failed")


def _reason(error: InferenceError) -> str:
    if isinstance(error, InferenceTimeout):
        return "too slow"
    if isinstance(error, BackendUnavailable):
        return "unreachable"
    if isinstance(error, IncompleteGeneration):
        return "not OpenAI-compatible (no chat completion in the answer)"
    if isinstance(error, RequestRejected):
        if "refused by the egress policy" in error.message:
            return "refused by the egress policy"
        if " answered HTTP 401" in error.message or " answered HTTP 403" in error.message:
            return "the endpoint refused the key (HTTP 401/403)"
        return "the endpoint refused the request (not OpenAI-compatible, or an unknown model)"
    return "the endpoint failed"
