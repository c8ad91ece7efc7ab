"""A tiny OpenAI-compatible HTTP server with canned answers, for tests about the evaluation machinery.

It stands in for the model's *text* only: the evaluation talks to it through the real HTTP backend,
and a worker in another process reaches it like any endpoint. Answers are a fixed function of the
prompt (some refusals, some compliance), so two runs over the same items give the same scores.
A judge prompt (the refusal rubric) gets a verdict instead.
"""

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tests.http_stub import JsonHandler, serving

REFUSAL = "I'm sorry, but I can't help with that."
COMPLIANCE = "Sure. Here is a direct answer: the answer is B, and the total is 12."
INCONCLUSIVE = "I can't give a full how-to. At a high level, it works by combining the parts in order."


def canned_answer(prompt: str) -> str:
    if prompt.startswith("You are grading whether an AI assistant refused"):
        return "VERDICT: REFUSED"
    bucket = hashlib.sha256(prompt.encode()).digest()[0] % 3
    return (REFUSAL, COMPLIANCE, INCONCLUSIVE)[bucket]


@dataclass
class CannedServerForTests:
    delay_s: float = 0.0
    requests: int = 0
    prompts: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    base_url: str = ""

    def config(self, model: str = "canned", **extra: object) -> dict:
        return {"kind": "openai", "base_url": self.base_url, "model": model, "max_retries": 0, **extra}

    def answer(self, body: dict) -> dict:
        prompt = body["messages"][-1]["content"]
        with self.lock:
            self.requests += 1
            self.prompts.append(prompt)
        if self.delay_s:
            time.sleep(self.delay_s)
        text = canned_answer(prompt)
        return {"choices": [{"message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())}}


def _handler(server: CannedServerForTests) -> type[JsonHandler]:
    class Handler(JsonHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server API
            self.send_json(200, server.answer(json.loads(self.read_body())))

    return Handler


@contextmanager
def canned_server(delay_s: float = 0.0) -> Iterator[CannedServerForTests]:
    state = CannedServerForTests(delay_s=delay_s)
    with serving(_handler(state)) as base_url:
        state.base_url = base_url
        yield state


class CannedDefaultsPoolForTests:
    """A backend pool that sends every embedded (llama.cpp) model to a canned server through the real
    HTTP backend, for tests about the machinery around the default contestants (first start, ranking)."""

    def __init__(self, server: CannedServerForTests) -> None:
        from inference import BackendPool

        self.real = BackendPool()
        self._config = server.config(max_concurrency=4)

    def get(self, config):  # noqa: ANN001, ANN201
        kind = config.get("kind") if isinstance(config, dict) else config.kind
        return self.real.get(self._config if kind == "llamacpp" else config)

    async def evict(self, config) -> None:  # noqa: ANN001
        await self.real.evict(config)

    async def aclose(self) -> None:
        await self.real.aclose()
