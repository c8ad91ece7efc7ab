"""Content hashes: the only way versions and fingerprints are made.

Canonical JSON (sorted keys, no whitespace) so that the same content always hashes the same,
whatever order a YAML file or a caller happened to use.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def _default(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, list)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot hash value of type {type(value).__name__}")


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_default)


def content_hash(value: Any, length: int = 16) -> str:
    """Hex sha256 of the canonical JSON of ``value``, truncated to ``length`` characters."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()[:length]


def file_hash(path: Path, length: int = 16) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()[:length]


def tree_hash(root: Path, length: int = 16) -> str:
    """Hash of every file under ``root`` (relative names and bytes), for dataset folders."""
    parts = [[str(p.relative_to(root)), file_hash(p, 64)] for p in sorted(root.rglob("*")) if p.is_file()]
    return content_hash(parts, length)


def stable_int(text: str) -> int:
    """A 64-bit integer derived from ``text``; used to seed per-item generators."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
