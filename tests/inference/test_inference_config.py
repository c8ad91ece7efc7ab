"""Model configs are data: validated on registration, errors name the field."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from inference import (
    DEFAULT_CONTESTANTS,
    LlamaCppConfig,
    OpenAIConfig,
    SamplingOverrides,
    SamplingParams,
    TransformersConfig,
    VLLMConfig,
    parse_backend_config,
)


def _locs(error: ValidationError) -> list[tuple[object, ...]]:
    return [tuple(e["loc"]) for e in error.errors()]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"kind": "llamacpp", "model": "smollm2-135m-instruct"}, LlamaCppConfig),
        ({"kind": "openai", "base_url": "http://127.0.0.1:8001/v1", "model": "m"}, OpenAIConfig),
        ({"kind": "vllm", "model": "/models/qwen", "tensor_parallel_size": 2}, VLLMConfig),
        ({"kind": "transformers", "model": "/models/qwen", "device": "cpu"}, TransformersConfig),
    ],
)
def test_each_kind_parses_to_its_model(data: dict[str, object], expected: type) -> None:
    assert isinstance(parse_backend_config(data), expected)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "tpu-magic"}, "kind"),
        ({"model": "smollm2-135m-instruct"}, "kind"),
        ({"kind": "llamacpp", "model": "llama-70b"}, "model"),
        ({"kind": "llamacpp", "model": "smollm2-135m-instruct", "n_threads": 0}, "n_threads"),
        ({"kind": "llamacpp", "model": "smollm2-135m-instruct", "surprise": 1}, "surprise"),
        ({"kind": "llamacpp", "model": "gemma3-270m", "prompt_style": "chat"}, "prompt_style"),
        ({"kind": "llamacpp", "model": "gemma3-270m", "correction_pass": True}, "correction_pass"),
        ({"kind": "openai", "base_url": "ftp://example.org", "model": "m"}, "base_url"),
        (
            {"kind": "openai", "base_url": "http://h/v1", "model": "m", "max_concurrency": 0},
            "max_concurrency",
        ),
        (
            {
                "kind": "openai",
                "base_url": "http://h/v1",
                "model": "m",
                "api_key_env": "K",
                "api_key_file": "/k",
            },
            "api_key_file",
        ),
        (
            {"kind": "openai", "base_url": "http://h/v1", "model": "m", "api_key_env": "bad name"},
            "api_key_env",
        ),
        ({"kind": "vllm", "model": "m", "gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"kind": "transformers", "model": "m", "device": "tpu"}, "device"),
    ],
)
def test_invalid_config_names_the_field(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        parse_backend_config(data)
    assert (field,) in _locs(caught.value)


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "llamacpp", "model": "gemma3-270m", "sampling": {"stop": ["###"]}},
        {"kind": "openai", "base_url": "https://api.example.org/v1", "model": "m", "api_key_env": "KEY"},
        {"kind": "vllm", "model": "/models/x", "max_model_len": 4096},
        {"kind": "transformers", "model": "/models/x", "dtype": "bfloat16"},
    ],
)
def test_stored_json_parses_back_to_the_same_config(data: dict[str, object]) -> None:
    # The registry stores model_dump(mode="json"); reading it back must not change the model.
    config = parse_backend_config(data)
    assert parse_backend_config(config.model_dump(mode="json")) == config


def test_base_model_defaults_to_completion_prompt() -> None:
    config = parse_backend_config({"kind": "llamacpp", "model": "gemma3-270m"})
    assert isinstance(config, LlamaCppConfig)
    assert config.prompt_style == "completion"
    assert config.n_threads == 1


def test_configs_are_frozen_and_hashable() -> None:
    config = parse_backend_config({"kind": "vllm", "model": "m"})
    with pytest.raises(ValidationError):
        config.model = "other"  # type: ignore[misc]
    assert hash(config) == hash(parse_backend_config({"kind": "vllm", "model": "m"}))


def test_sampling_params_validate_and_fingerprint() -> None:
    params = SamplingParams(temperature=0.2, stop=("\n\n",), seed=7)
    assert params.fingerprint_dict() == {
        "temperature": 0.2,
        "top_p": 0.95,
        "max_tokens": 256,
        "seed": 7,
        "stop": ["\n\n"],
    }
    for bad in ({"temperature": -1}, {"top_p": 0}, {"max_tokens": 0}, {"stop": ("",)}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            SamplingParams(**bad)  # type: ignore[arg-type]


def test_overrides_fill_only_what_the_caller_left_unset() -> None:
    overrides = SamplingOverrides(temperature=0.1, max_tokens=32)
    assert overrides.apply(SamplingParams()).temperature == 0.1
    assert overrides.apply(SamplingParams()).max_tokens == 32
    explicit = overrides.apply(SamplingParams(temperature=0.9))
    assert (explicit.temperature, explicit.max_tokens) == (0.9, 32)


def test_default_contestants_are_valid_and_distinct() -> None:
    assert len(DEFAULT_CONTESTANTS) >= 4
    slugs = [c.slug for c in DEFAULT_CONTESTANTS]
    assert len(set(slugs)) == len(slugs)
    configs = [parse_backend_config(c.config) for c in DEFAULT_CONTESTANTS]
    assert len(set(configs)) == len(configs)
    assert all(c.description and c.display_name and c.organisation for c in DEFAULT_CONTESTANTS)
    kinds = {(c.model, c.system_prompt is not None, c.correction_pass, c.prompt_style) for c in configs}  # type: ignore[union-attr]
    assert len(kinds) == 4
    copy = DEFAULT_CONTESTANTS[0].config_dict()
    copy["model"] = "changed"
    assert DEFAULT_CONTESTANTS[0].config["model"] == "smollm2-135m-instruct"
