"""Value types shared by every backend: messages, sampling parameters, results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "error"]


@dataclass(frozen=True, slots=True)
class Message:
    """One turn of a conversation."""

    role: Role
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


class SamplingParams(BaseModel):
    """How to sample one completion.

    Fields the caller sets explicitly win over a model config's sampling
    defaults; fields left at their default take the config's value (see
    `inference.config.SamplingOverrides.apply`). pydantic's `model_fields_set`
    is what tells the two apart, so build instances with keyword arguments.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=32_768)
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    stop: tuple[str, ...] = Field(default=(), max_length=8)

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not s for s in value):
            raise ValueError("stop sequences must be non-empty strings")
        return value

    def fingerprint_dict(self) -> dict[str, Any]:
        """Every field, JSON-ready and in a fixed order, for cache keys."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class GenerationResult:
    """The record of one finished (or failed) generation.

    `complete` is False when the text is a partial answer kept from a
    generation that failed or was cancelled part-way; then `finish_reason`
    is "error".
    """

    text: str
    finish_reason: FinishReason
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    ttft_s: float | None
    complete: bool

    @property
    def decode_tokens_per_s(self) -> float | None:
        """Completion tokens per second after the first token, if measurable."""
        if self.ttft_s is None or self.completion_tokens < 2:
            return None
        decode_s = self.latency_s - self.ttft_s
        if decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / decode_s
