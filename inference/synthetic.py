"""Random-weight chat models built from a config: GPU checks and tests without downloads.

Builds a Llama-architecture model and a word-level tokenizer with a chat
template entirely in code and saves them as a normal Hugging Face folder, so
the same folder loads in transformers and in vLLM. The answers are noise; the
shapes, memory traffic and batching are those of a real small chat model.
Needs torch, transformers and tokenizers (the `transformers` extra).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class ModelShape:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    layers: int
    heads: int
    kv_heads: int
    context: int


SHAPES: Mapping[str, ModelShape] = MappingProxyType(
    {
        # For CPU tests: builds and generates in well under a second.
        "tiny": ModelShape(1024, 64, 128, 2, 4, 2, 512),
        # Qwen2.5-0.5B's body (about 0.4 B parameters with a 32k vocabulary).
        "small": ModelShape(32_000, 896, 4864, 24, 14, 2, 4096),
    }
)

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>")
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} </s> "
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def parameter_count(shape: ModelShape) -> int:
    head_dim = shape.hidden_size // shape.heads
    attention = 2 * shape.hidden_size * shape.hidden_size + 2 * shape.hidden_size * shape.kv_heads * head_dim
    mlp = 3 * shape.hidden_size * shape.intermediate_size
    return shape.layers * (attention + mlp) + shape.vocab_size * shape.hidden_size


def build_random_chat_model(
    folder: Path, size: str = "tiny", *, seed: int = 0, device: str = "cpu", dtype: str = "float32"
) -> Path:
    """Write a random-weight model and its tokenizer to `folder`; return it."""
    import torch

    shape = SHAPES[size]
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer(shape).save_pretrained(folder)
    torch.manual_seed(seed)
    with torch.device(device):
        model = _model(shape).to(getattr(torch, dtype))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _model(shape: ModelShape) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        num_key_value_heads=shape.kv_heads,
        max_position_embeddings=shape.context,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        tie_word_embeddings=True,
    )
    return LlamaForCausalLM(config).eval()


def _tokenizer(shape: ModelShape) -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = [f"w{i}" for i in range(shape.vocab_size - len(SPECIAL_TOKENS))]
    vocab = {token: index for index, token in enumerate((*SPECIAL_TOKENS, *words))}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    core.add_special_tokens(list(SPECIAL_TOKENS))
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.model_max_length = shape.context
    return tokenizer
