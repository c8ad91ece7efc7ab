"""API keys of OpenAI-compatible endpoints.

A model's config names where the key lives (an environment variable or a
secret file, e.g. a mounted Kubernetes secret; admin-registered models only) or
carries the value the service decrypted for this build; the key itself is read when
the backend is built, kept in a `SecretStr` so it never shows in a repr or a
log line, and never written anywhere.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from inference.config import OpenAIConfig
from inference.errors import BackendUnavailable


def resolve_api_key(config: OpenAIConfig, environ: Mapping[str, str] | None = None) -> SecretStr | None:
    """The endpoint's key, or None when the config names no key source."""
    if config.api_key is not None:  # given as a value: decrypted by the service for this build only
        return SecretStr(config.api_key.get_secret_value().strip())
    if config.api_key_env:
        value = (os.environ if environ is None else environ).get(config.api_key_env, "")
        if not value.strip():
            raise BackendUnavailable(f"the environment variable {config.api_key_env} is not set")
        return SecretStr(value.strip())
    if config.api_key_file:
        return SecretStr(_read_key_file(Path(config.api_key_file)))
    return None


def _read_key_file(path: Path) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        # Name the file, not its content: the error reaches logs and API clients.
        raise BackendUnavailable(f"cannot read the API key file {path}: {error.strerror}") from None
    if not value:
        raise BackendUnavailable(f"the API key file {path} is empty")
    return value
