"""Embedded CPU models: GGUF files shipped in PyPI packages, run by llama.cpp."""

from inference.llamacpp.backend import LlamaCppBackend
from inference.llamacpp.files import EMBEDDED_MODELS, resolve_model_file
from inference.llamacpp.runtime import LoadedModel, ModelCache, ModelKey

__all__ = [
    "EMBEDDED_MODELS",
    "LlamaCppBackend",
    "LoadedModel",
    "ModelCache",
    "ModelKey",
    "resolve_model_file",
]
