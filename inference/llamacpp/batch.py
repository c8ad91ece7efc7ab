"""Many answers at once on one llama.cpp model: the evaluation batch path.

`Llama` handles one sequence at a time. For a batch we open a second context
on the same weights with one KV-cache sequence per conversation, prefill the
prompts packed together, then decode every unfinished sequence in a single
`llama_decode` per step. On CPU a step for eight sequences costs little more
than a step for one (the weights are read once per step, not once per
sequence), so batch throughput is several times single-stream throughput.

Each sequence has its own sampler chain, built like `Llama`'s (top-p, then
temperature, then a seeded draw), so a seed gives each item the same sampling
randomness it would get alone.

Interactive work (arena answers) does not wait for a whole batch: between two
decode steps or prefill chunks the batch calls `lend`, which runs the waiting
interactive calls on this same thread in the model's main context and returns.
The batch's own context, KV cache and samplers are not touched meanwhile, so
every item decodes exactly the tokens it would have undisturbed; only its clock
is paused (latencies exclude the time lent).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from inference.errors import ContextTooLong, GenerationCancelled, InferenceError
from inference.llamacpp.decode import AnswerBuilder, check_fits, run_decode, seed_of, tokenize_prompt
from inference.types import GenerationResult, SamplingParams

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp._internals import LlamaBatch, LlamaContext, LlamaSampler

logger = logging.getLogger(__name__)

#: Sequences decoded together; more gain little on a CPU and cost KV memory.
GROUP_SIZE = 16
#: Prompt tokens per prefill call at most (the context's batch size).
PREFILL_CHUNK = 512
#: Prompt tokens per prefill call in fact: the packed prompts of sixteen items are a few such calls, and
#: interactive work waiting for the thread gets it between two of them. 512 took about 4 s on the loaded
#: 2-core machine, 128 about a quarter, at the same prefill throughput and with the same answers (measured).
PREFILL_STEP = 128


Lend = Callable[[], float]
"""Runs waiting interactive work on the model's thread; returns the seconds it took."""


def _lend_nothing() -> float:
    return 0.0


@dataclass
class _Clock:
    """A batch's stopwatch and its two interruptions: a stop request, interactive work to let through."""

    cancel: threading.Event
    lend: Lend = _lend_nothing
    started: float = field(default_factory=time.perf_counter)

    def now(self) -> float:
        return time.perf_counter() - self.started

    def checkpoint(self) -> None:
        """Between two steps: stop if asked, else let waiting interactive work run (clock paused)."""
        if self.cancel.is_set():
            raise GenerationCancelled("the caller stopped waiting for this batch")
        self.started += self.lend()
        if self.cancel.is_set():
            raise GenerationCancelled("the caller stopped waiting for this batch")


@dataclass
class _Sequence:
    index: int  # the item's slot in the caller's batch
    seq_id: int  # its KV-cache sequence within the group
    tokens: list[int]
    builder: AnswerBuilder
    sampler: LlamaSampler
    position: int = 0
    logit_row: int = -1
    last: int = -1
    first_token_s: float | None = None
    finished_s: float = 0.0
    done: bool = False


def decode_many(
    llm: Llama, prompts: Sequence[str], params: SamplingParams, n_threads: int, *, lstrip: bool = False,
    cancel: threading.Event | None = None, lend: Lend | None = None,
) -> list[GenerationResult | InferenceError]:
    """Answer every prompt; a prompt that does not fit gets ContextTooLong in its slot.

    Falls back to one prompt at a time if llama.cpp refuses the batched
    context (e.g. it cannot allocate the KV cache for the whole group).
    `cancel`, once set, stops the work at the next decode step with `GenerationCancelled`.
    `lend` is called at every step to let interactive work through (see the module's docstring).
    """
    cancel = cancel or threading.Event()
    lend = lend or _lend_nothing
    try:
        return _decode_batched(llm, prompts, params, n_threads, lstrip, _Clock(cancel, lend))
    except (
        RuntimeError,
        ValueError,
        AttributeError,
        ImportError,
    ) as error:  # llama.cpp refused, or its private API moved
        logger.warning(
            "inference.llamacpp.batch.fallback", extra={"error": repr(error), "items": len(prompts)}
        )
        return [_decode_alone(llm, prompt, params, lstrip, _Clock(cancel, lend)) for prompt in prompts]


def _decode_alone(
    llm: Llama, prompt: str, params: SamplingParams, lstrip: bool, clock: _Clock
) -> GenerationResult | InferenceError:
    # One prompt at a time in the main context: interactive work may go between two prompts, not inside one.
    clock.checkpoint()
    cancel = clock.cancel
    started = time.perf_counter()
    try:
        decoded = run_decode(llm, prompt, params, cancel=cancel, lstrip=lstrip)
    except ContextTooLong as error:
        return error
    if cancel.is_set():
        raise GenerationCancelled("the caller stopped waiting for this batch")
    end = decoded.end
    return GenerationResult(
        decoded.text,
        end.finish_reason,
        end.prompt_tokens,
        end.completion_tokens,
        time.perf_counter() - started,
        None,
        complete=True,
    )


def _decode_batched(
    llm: Llama, prompts: Sequence[str], params: SamplingParams, n_threads: int, lstrip: bool, clock: _Clock,
) -> list[GenerationResult | InferenceError]:
    out: list[GenerationResult | InferenceError | None] = [None] * len(prompts)
    ready: list[tuple[int, list[int], int]] = []
    for index, prompt in enumerate(prompts):
        tokens = tokenize_prompt(llm, prompt)
        try:
            budget = min(params.max_tokens, check_fits(llm, len(tokens)))
        except ContextTooLong as error:
            out[index] = error
            continue
        ready.append((index, tokens, budget))
    for start in range(0, len(ready), GROUP_SIZE):
        group = ready[start : start + GROUP_SIZE]
        for index, result in _decode_group(llm, group, params, n_threads, lstrip, clock):
            out[index] = result
    return [item for item in out if item is not None]


def _decode_group(
    llm: Llama, group: list[tuple[int, list[int], int]], params: SamplingParams, n_threads: int, lstrip: bool,
    clock: _Clock,
) -> list[tuple[int, GenerationResult]]:
    from llama_cpp._internals import LlamaBatch

    size = sum(len(tokens) + budget for _, tokens, budget in group)
    ctx = _context(llm, n_ctx=size + 64, n_seq=len(group), n_threads=n_threads)
    batch = LlamaBatch(n_tokens=max(PREFILL_CHUNK, len(group)), embd=0, n_seq_max=1, verbose=False)
    sequences = [
        _Sequence(index, seq_id, tokens, AnswerBuilder(llm, params, budget, lstrip=lstrip), _sampler(params))
        for seq_id, (index, tokens, budget) in enumerate(group)
    ]
    clock.started = time.perf_counter()  # each group's latencies count from its own start
    try:
        _prefill(ctx, batch, sequences, clock)
        while any(not s.done for s in sequences):
            clock.checkpoint()
            _step(ctx, batch, [s for s in sequences if not s.done], clock)
    finally:
        batch.close()
        ctx.close()
        for sequence in sequences:
            sequence.sampler.close()
    return [(s.index, _result(s)) for s in sequences]


def _context(llm: Llama, *, n_ctx: int, n_seq: int, n_threads: int) -> LlamaContext:
    import llama_cpp
    from llama_cpp._internals import LlamaContext

    # Start from the main context's settings (attention kernel, KV types) so a
    # batch computes what a single stream computes, up to kernel rounding.
    params = llama_cpp.llama_context_params.from_buffer_copy(llm.context_params)
    params.n_ctx = n_ctx
    params.n_batch = PREFILL_CHUNK
    params.n_ubatch = PREFILL_CHUNK
    params.n_seq_max = n_seq
    params.kv_unified = True  # one pool of cells: sequences of unequal length share it
    params.n_threads = n_threads
    params.n_threads_batch = n_threads
    return LlamaContext(model=llm._model, params=params, verbose=False)


def _sampler(params: SamplingParams) -> LlamaSampler:
    from llama_cpp._internals import LlamaSampler

    sampler = LlamaSampler()
    if params.temperature == 0:
        sampler.add_greedy()
        return sampler
    sampler.add_top_p(params.top_p, 1)
    sampler.add_temp(params.temperature)
    sampler.add_dist(seed_of(params))
    return sampler


def _prefill(ctx: LlamaContext, batch: LlamaBatch, sequences: list[_Sequence], clock: _Clock) -> None:
    """Evaluate all prompts, packed into chunks; sample each first token.

    The prefix every prompt shares (chat template header, system prompt) is
    evaluated once and its KV cells shared with the other sequences.
    """
    shared = _shared_prefix(sequences)
    if shared:
        _evaluate(ctx, batch, [(sequences[0], p) for p in range(shared)], clock)
        for sequence in sequences[1:]:
            ctx.kv_cache_seq_cp(sequences[0].seq_id, sequence.seq_id, 0, shared)
    _evaluate(ctx, batch, [(s, p) for s in sequences for p in range(shared, len(s.tokens))], clock)


def _shared_prefix(sequences: list[_Sequence]) -> int:
    """Tokens all prompts start with, leaving each at least one of its own to evaluate."""
    if len(sequences) < 2:
        return 0
    first = sequences[0].tokens
    limit = min(len(s.tokens) for s in sequences) - 1
    size = 0
    while size < limit and all(s.tokens[size] == first[size] for s in sequences):
        size += 1
    return size


def _evaluate(ctx: LlamaContext, batch: LlamaBatch, pending: list[tuple[_Sequence, int]], clock: _Clock) -> None:
    """Decode (sequence, position) tokens in chunks; sample where a prompt ends.

    Sixteen long prompts (in-the-wild jailbreaks run to thousands of characters) are many chunks: a stop
    request is honoured between two of them, not only once decoding starts.
    """
    for start in range(0, len(pending), PREFILL_STEP):
        clock.checkpoint()
        chunk = pending[start : start + PREFILL_STEP]
        batch.reset()
        finished = []
        for row, (sequence, position) in enumerate(chunk):
            is_last = position == len(sequence.tokens) - 1
            _append(batch, sequence.tokens[position], position, sequence, logits=is_last)
            if is_last:
                sequence.logit_row = row
                finished.append(sequence)
        ctx.decode(batch)
        for sequence in finished:
            sequence.position = len(sequence.tokens)
            _sample(ctx, sequence, clock)


def _step(ctx: LlamaContext, batch: LlamaBatch, running: list[_Sequence], clock: _Clock) -> None:
    """Feed each running sequence its last token and sample the next, in one decode."""
    batch.reset()
    for row, sequence in enumerate(running):
        _append(batch, sequence.last, sequence.position, sequence, logits=True)
        sequence.logit_row = row
        sequence.position += 1
    ctx.decode(batch)
    for sequence in running:
        _sample(ctx, sequence, clock)


def _sample(ctx: LlamaContext, sequence: _Sequence, clock: _Clock) -> None:
    token = sequence.sampler.sample(ctx, sequence.logit_row)  # also "accepts" the token
    now = clock.now()
    if sequence.first_token_s is None:
        sequence.first_token_s = now
    sequence.last = token
    sequence.done = sequence.builder.add(token)
    sequence.finished_s = now


def _append(batch: LlamaBatch, token: int, position: int, sequence: _Sequence, *, logits: bool) -> None:
    raw = batch.batch
    row = raw.n_tokens
    raw.token[row] = token
    raw.pos[row] = position
    raw.seq_id[row][0] = sequence.seq_id
    raw.n_seq_id[row] = 1
    raw.logits[row] = logits
    raw.n_tokens = row + 1


def _result(sequence: _Sequence) -> GenerationResult:
    decoded = sequence.builder.result(len(sequence.tokens))
    return GenerationResult(
        text=decoded.text,
        finish_reason=decoded.end.finish_reason,
        prompt_tokens=decoded.end.prompt_tokens,
        completion_tokens=decoded.end.completion_tokens,
        latency_s=sequence.finished_s,
        ttft_s=sequence.first_token_s,
        complete=True,
    )
