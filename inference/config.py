"""A model's config is data: a backend `kind` plus that backend's parameters.

Configs are validated when a model is registered (`parse_backend_config`), are
frozen, and their stored form holds no secrets: an endpoint's API key is named by
an environment variable or a file path (admin-registered models), or given as a
value that the service stores encrypted apart from the config and hands back as
`api_key` only when the backend is built; `api_key` is left out of every dump.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from inference.types import SamplingParams

EmbeddedModel = Literal["smollm2-135m-instruct", "gemma3-270m"]
TorchDType = Literal["auto", "float16", "bfloat16", "float32"]

# Base models have no chat template; they only answer a completion-style prompt.
_BASE_MODELS: frozenset[str] = frozenset({"gemma3-270m"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SamplingOverrides(_Frozen):
    """A model's own sampling defaults; None leaves the request's value."""

    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    max_tokens: int | None = Field(default=None, ge=1, le=32_768)
    stop: tuple[str, ...] | None = Field(default=None, max_length=8)

    def apply(self, params: SamplingParams) -> SamplingParams:
        """Fill the fields the caller did not set explicitly with these defaults."""
        defaults = {
            name: value
            for name, value in self.model_dump(exclude_none=True).items()
            if name not in params.model_fields_set
        }
        if not defaults:
            return params
        return params.model_copy(update=defaults)


class LlamaCppConfig(_Frozen):
    """An embedded GGUF model run by llama.cpp on CPU."""

    kind: Literal["llamacpp"]
    model: EmbeddedModel
    system_prompt: str | None = Field(default=None, max_length=8_000)
    # Left out, it follows the model: "completion" for base models, else "chat".
    prompt_style: Literal["chat", "completion"] = Field(default=None, validate_default=True)  # type: ignore[assignment]
    correction_pass: bool = Field(default=False, validate_default=True)
    n_threads: int = Field(default=1, ge=1, le=64)
    n_ctx: int = Field(default=2048, ge=256, le=32_768)
    sampling: SamplingOverrides = SamplingOverrides()

    # Field validators (not a model validator) so an error's loc names the field.
    @field_validator("prompt_style", mode="before")
    @classmethod
    def _style_fits_model(cls, style: object, info: ValidationInfo) -> object:
        model = info.data.get("model")
        if style is None:
            return "completion" if model in _BASE_MODELS else "chat"
        if model in _BASE_MODELS and style == "chat":
            raise ValueError(f"{model} is a base model without a chat template; use 'completion'")
        return style

    @field_validator("correction_pass")
    @classmethod
    def _correction_needs_chat(cls, enabled: bool, info: ValidationInfo) -> bool:
        if enabled and info.data.get("prompt_style") != "chat":
            raise ValueError("the correction pass needs prompt_style 'chat'")
        return enabled


class OpenAIConfig(_Frozen):
    """Any server that speaks OpenAI's /v1/chat/completions (vLLM, llama.cpp, ...)."""

    kind: Literal["openai"]
    base_url: HttpUrl
    model: str = Field(min_length=1, max_length=256)
    api_key_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=128)
    api_key_file: str | None = Field(default=None, min_length=1, max_length=1024)
    api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    # "public": every connection is checked by inference.egress (set for submitted models by the
    # service, never taken from the submitter); "any": maintainers' own endpoints, loopback included.
    egress: Literal["public", "any"] = "any"
    max_concurrency: int = Field(default=4, ge=1, le=256)
    timeout_s: float = Field(default=60.0, gt=0.0, le=3_600.0)
    max_retries: int = Field(default=3, ge=0, le=10)
    backoff_base_s: float = Field(default=0.5, gt=0.0, le=60.0)
    backoff_max_s: float = Field(default=20.0, gt=0.0, le=600.0)
    sampling: SamplingOverrides = SamplingOverrides()

    @field_validator("api_key_file")
    @classmethod
    def _one_key_source(cls, path: str | None, info: ValidationInfo) -> str | None:
        if path and info.data.get("api_key_env"):
            raise ValueError("give api_key_env or api_key_file, not both")
        return path

    @field_validator("api_key")
    @classmethod
    def _key_value_alone(cls, key: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if key is not None and (info.data.get("api_key_env") or info.data.get("api_key_file")):
            raise ValueError("give api_key, api_key_env or api_key_file, not several")
        if key is not None and not key.get_secret_value().strip():
            raise ValueError("the API key is empty")
        return key

    @field_validator("egress")
    @classmethod
    def _public_takes_no_server_key(cls, egress: str, info: ValidationInfo) -> str:
        # A submitted endpoint must never be sent one of the server's own environment variables or files.
        if egress == "public" and (info.data.get("api_key_env") or info.data.get("api_key_file")):
            raise ValueError("an endpoint with egress 'public' takes its key as api_key, not api_key_env/_file")
        return egress

    @property
    def chat_url(self) -> str:
        return str(self.base_url).rstrip("/") + "/chat/completions"


class VLLMConfig(_Frozen):
    """vLLM's offline engine on a GPU worker (extra `gpu`)."""

    kind: Literal["vllm"]
    model: str = Field(min_length=1, max_length=1024, description="local path or hub name")
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    dtype: TorchDType = "auto"
    gpu_memory_utilization: float = Field(default=0.9, gt=0.0, le=1.0)
    max_model_len: int | None = Field(default=None, ge=16, le=1_048_576)
    chat_template: str | None = Field(default=None, max_length=32_000)
    enforce_eager: bool = False
    seed: int = Field(default=0, ge=0)
    sampling: SamplingOverrides = SamplingOverrides()


class TransformersConfig(_Frozen):
    """A Hugging Face transformers model in PyTorch, on CUDA or CPU (extra `transformers`)."""

    kind: Literal["transformers"]
    model: str = Field(min_length=1, max_length=1024, description="local model folder")
    device: Literal["auto", "cuda", "cpu"] = "auto"
    dtype: TorchDType = "auto"
    batch_size: int = Field(default=8, ge=1, le=1_024)
    chat_template: str | None = Field(default=None, max_length=32_000)
    sampling: SamplingOverrides = SamplingOverrides()


BackendConfig = Annotated[
    LlamaCppConfig | OpenAIConfig | VLLMConfig | TransformersConfig,
    Field(discriminator="kind"),
]

BACKEND_KINDS: Mapping[str, type[_Frozen]] = MappingProxyType(
    {
        "llamacpp": LlamaCppConfig,
        "openai": OpenAIConfig,
        "vllm": VLLMConfig,
        "transformers": TransformersConfig,
    }
)


def parse_backend_config(data: Mapping[str, Any]) -> BackendConfig:
    """Validate a config dict; raises pydantic.ValidationError whose locs name fields.

    The kind is dispatched by hand rather than through the discriminated union
    so that error locations read `("kind",)` or `("n_threads",)`, never
    `("llamacpp", "n_threads")` or `()`: the API turns them into 422 messages.
    """
    kind = data.get("kind") if isinstance(data, Mapping) else None
    model = BACKEND_KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        raise _bad_kind(data, kind)
    return model.model_validate(dict(data))  # type: ignore[return-value]


def _bad_kind(data: object, kind: object) -> ValidationError:
    if not isinstance(data, Mapping) or "kind" not in data:
        error: dict[str, Any] = {"type": "missing", "loc": ("kind",), "input": data}
    else:
        expected = ", ".join(repr(k) for k in BACKEND_KINDS)
        error = {"type": "literal_error", "loc": ("kind",), "input": kind, "ctx": {"expected": expected}}
    return ValidationError.from_exception_data("BackendConfig", [error])  # type: ignore[list-item]
