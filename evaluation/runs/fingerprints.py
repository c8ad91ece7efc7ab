"""Fingerprints that key per-item rows, so that resumes reuse work and changes never mix rows.

Two levels, because a new judge must reuse generations:
- generation = model config + task version + prompt template + sampling params + seed + item id;
- score = generation + scorer version (which includes the refusal rules' and the judge's versions
  for safety scorers).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from evaluation.hashing import content_hash

# Credentials must not be part of a fingerprint: rotating a key would re-run everything, and a
# hash of a short secret is a guessable record of it.
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|token|password|authorization|credential)", re.IGNORECASE)


def public_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` without credential-like keys, recursively."""
    cleaned: dict[str, Any] = {}
    for key, value in config.items():
        if _SECRET_KEY.search(str(key)):
            continue
        cleaned[key] = public_config(value) if isinstance(value, Mapping) else value
    return cleaned


def model_fingerprint(model_config: Mapping[str, Any]) -> str:
    return content_hash(public_config(model_config), 24)


def generation_fingerprint(
    model_fp: str,
    task_version: str,
    template_version: str,
    sampling: Mapping[str, Any],
    seed: int,
    item_id: str,
) -> str:
    return content_hash(
        {
            "model": model_fp,
            "task": task_version,
            "template": template_version,
            "sampling": dict(sampling),
            "seed": seed,
            "item": item_id,
        },
        32,
    )


def score_fingerprint(generation_fp: str, scorer_version: str) -> str:
    return content_hash({"generation": generation_fp, "scorer": scorer_version}, 32)


def run_fingerprint(
    model_fp: str,
    suite_version: str,
    sampling: Mapping[str, Any],
    seed: int,
    judge_version: str | None,
    sample_fp: str | None,
) -> str:
    """Identifies one run; any change to its parts is a new run."""
    return content_hash(
        {
            "model": model_fp,
            "suite": suite_version,
            "sampling": dict(sampling),
            "seed": seed,
            "judge": judge_version,
            "sample": sample_fp,
        },
        24,
    )
