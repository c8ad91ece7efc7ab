"""What a submitted endpoint may cost a worker: one short request before its evaluation plans ~1,150
items, and a time budget for its answers in each run.

A wrong URL, a bad key or a server that is not OpenAI-compatible would otherwise fail every item in
turn, each after its own retries; the check fails the run at once with the reason instead. An endpoint
that answers, but slowly, passes the check: its owner also picks how few calls it takes at once
(`max_concurrency` 1) and how long each may take, so without a budget one submission could hold a
worker (which runs one evaluation at a time by default) for days: 1,150 items of up to
`LIBRA_EVAL_BATCH_TIMEOUT_S` (900 s) each, one after another.
"""

import asyncio
from collections.abc import Awaitable, Mapping
from typing import Any, TypeVar

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

T = TypeVar("T")

CHECK_TIMEOUT_S = 15.0
BUDGET_SPENT = "stopped after its time budget"  # how a run's error begins when the budget ended it
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


async def within_budget(generation: Awaitable[T], budget_s: float | None) -> T:
    """The run's generation, or a LibraError once it has run ``budget_s`` (None: no limit). Stopping it is
    a cancellation, as when a worker stops: the items finished so far are stored, and the next run of the
    same inputs resumes from them."""
    if budget_s is None:
        return await generation
    try:
        return await asyncio.wait_for(generation, budget_s)
    except TimeoutError:
        raise LibraError(f"{BUDGET_SPENT} ({budget_s:g} s, LIBRA_EVAL_SUBMITTED_BUDGET_S): the endpoint answers "
                         "too slowly for the suite; the items it finished are kept, and a new run resumes from "
                         "them", code="evaluation_budget_spent") from None


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
