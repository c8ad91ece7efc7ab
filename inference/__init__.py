"""Model backends behind one interface: embedded llama.cpp, OpenAI-compatible HTTP, vLLM, transformers.

Imports nothing of the project. Optional engines (vLLM, torch) are imported
only when a config of their kind is used. See docs/inference.md.
"""

from inference.config import (
    BACKEND_KINDS,
    BackendConfig,
    LlamaCppConfig,
    OpenAIConfig,
    SamplingOverrides,
    TransformersConfig,
    VLLMConfig,
    parse_backend_config,
)
from inference.contestants import DEFAULT_CONTESTANTS, Contestant
from inference.errors import (
    BackendUnavailable,
    ContextTooLong,
    IncompleteGeneration,
    InferenceError,
    InferenceTimeout,
    ModelFileMissing,
    RateLimited,
    RequestRejected,
)
from inference.llamacpp.prompts import PROMPTS_VERSION
from inference.pool import BackendPool
from inference.protocol import Backend, BatchItem, Conversation
from inference.stream import GenerationStream, StreamEnd
from inference.types import FinishReason, GenerationResult, Message, Role, SamplingParams

__all__ = [
    "BACKEND_KINDS",
    "DEFAULT_CONTESTANTS",
    "PROMPTS_VERSION",
    "Backend",
    "BackendConfig",
    "BackendPool",
    "BackendUnavailable",
    "BatchItem",
    "Contestant",
    "ContextTooLong",
    "Conversation",
    "FinishReason",
    "GenerationResult",
    "GenerationStream",
    "IncompleteGeneration",
    "InferenceError",
    "InferenceTimeout",
    "LlamaCppConfig",
    "Message",
    "ModelFileMissing",
    "OpenAIConfig",
    "RateLimited",
    "RequestRejected",
    "Role",
    "SamplingOverrides",
    "SamplingParams",
    "StreamEnd",
    "TransformersConfig",
    "VLLMConfig",
    "parse_backend_config",
]
