"""The token loop that runs on a model's thread.

We drive `Llama.generate()` ourselves rather than `create_completion(stream=True)`:
that gives exact token counts while streaming, a stop check between tokens
for cancellation, and incremental detokenisation instead of re-decoding the
whole answer at every token.
"""

from __future__ import annotations

import codecs
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from inference.errors import ContextTooLong
from inference.stream import StreamEnd
from inference.text import StopMatcher
from inference.types import FinishReason, SamplingParams

if TYPE_CHECKING:
    from llama_cpp import Llama


@dataclass(frozen=True, slots=True)
class Decoded:
    """The outcome of one run of the token loop."""

    text: str
    end: StreamEnd


def tokenize_prompt(llm: Llama, prompt: str) -> list[int]:
    """Tokens of a rendered prompt, with the BOS token exactly once."""
    bos = llm.token_bos()
    add_bos = bool(llm._model.add_bos_token()) and bos >= 0
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=True)
    # Chat templates that open with the BOS text (ChatML's <|im_start|> is
    # SmolLM2's BOS) would otherwise start with it twice.
    if len(tokens) >= 2 and tokens[0] == tokens[1] == bos:
        tokens = tokens[1:]
    return tokens


def check_fits(llm: Llama, prompt_tokens: int) -> int:
    """How many tokens may still be generated; ContextTooLong if none."""
    limit = llm.n_ctx()
    if prompt_tokens >= limit:
        raise ContextTooLong(
            f"the prompt has {prompt_tokens} tokens; the context window holds {limit}",
            prompt_tokens=prompt_tokens,
            context_limit=limit,
        )
    return limit - prompt_tokens


class AnswerBuilder:
    """Turns sampled tokens into answer text: UTF-8 across tokens, stop sequences, limits.

    Shared by the single-sequence loop and the batched one, so both end an
    answer by the same rules.
    """

    def __init__(
        self,
        llm: Llama,
        params: SamplingParams,
        budget: int,
        emit: Callable[[str], None] | None = None,
        *,
        lstrip: bool = False,
    ) -> None:
        self._llm = llm
        self._vocab = llm._model.vocab
        self._budget = budget
        self._emit = emit
        self._lstrip = lstrip
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stops = StopMatcher(params.stop)
        self._pieces: list[str] = []
        self.count = 0
        self.finish_reason: FinishReason = "length"

    def add(self, token: int) -> bool:
        """Take one sampled token; True once the answer is finished."""
        import llama_cpp

        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self.finish_reason = "stop"
            return True
        self.count += 1
        self._out(self._stops.feed(self._decoder.decode(self._llm.detokenize([token]))))
        if self._stops.stopped:
            self.finish_reason = "stop"
            return True
        return self.count >= self._budget

    def result(self, prompt_tokens: int) -> Decoded:
        self._out(self._stops.feed(self._decoder.decode(b"", final=True)) + self._stops.flush())
        end = StreamEnd(self.finish_reason, prompt_tokens=prompt_tokens, completion_tokens=self.count)
        return Decoded("".join(self._pieces), end)

    def _out(self, text: str) -> None:
        if self._lstrip and not self._pieces:
            text = text.lstrip()
        if text:
            self._pieces.append(text)
            if self._emit is not None:
                self._emit(text)


def run_decode(
    llm: Llama,
    prompt: str,
    params: SamplingParams,
    emit: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    *,
    lstrip: bool = False,
) -> Decoded:
    """Generate one answer; call `emit` with each safe-to-show piece of text.

    `lstrip` drops leading whitespace: after a completion prompt's "A:" the
    answer's first token carries a space that belongs to the format.
    """
    tokens = tokenize_prompt(llm, prompt)
    budget = min(params.max_tokens, check_fits(llm, len(tokens)))
    llm.set_seed(seed_of(params))
    builder = AnswerBuilder(llm, params, budget, emit, lstrip=lstrip)
    # top_k=0 and min_p=0 switch off llama.cpp's extra samplers so that
    # temperature and top_p mean what they mean for every other backend.
    for token in llm.generate(
        tokens, temp=params.temperature, top_p=params.top_p, top_k=0, min_p=0.0, repeat_penalty=1.0
    ):
        if builder.add(token) or (cancel is not None and cancel.is_set()):
            break
    return builder.result(len(tokens))


def seed_of(params: SamplingParams) -> int:
    return params.seed if params.seed is not None else random.SystemRandom().getrandbits(32)
