"""Builders expand a compact project data file into item records.

A builder is named in a source spec (``builder: hierarchy_product``) and receives the parsed file
as a list of records. Builders are pure and deterministic: no randomness, so a task's content
hash fully describes its items.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

Records = list[dict[str, Any]]


def hierarchy_product(records: Records) -> Records:
    """Cross every guarded system prompt (scenario) with every attempt written for its kind.

    Secret scenarios guard a string; rule scenarios forbid an output pattern. Attempts are
    templates that name the guarded ``{asset}`` or the forbidden ``{request}``.
    """
    (document,) = records
    out: Records = []
    for scenario in document["scenarios"]:
        for attempt in document["attempts"]:
            if attempt["applies_to"] == scenario["kind"]:
                out.append(_hierarchy_item(scenario, attempt))
    return out


def _hierarchy_item(scenario: Mapping[str, Any], attempt: Mapping[str, Any]) -> dict[str, Any]:
    user = attempt["text"].format(asset=scenario.get("asset", ""), request=scenario.get("request", ""))
    return {
        "id": f"{scenario['id']}.{attempt['id']}",
        "system": scenario["system"].strip(),
        "user": user,
        "guard": {
            "secrets": list(scenario.get("secrets", [])),
            "forbidden_patterns": list(scenario.get("forbidden_patterns", [])),
        },
        "scenario": scenario["id"],
        "attempt": attempt["id"],
    }


BUILDERS: Mapping[str, Callable[[Records], Records]] = MappingProxyType(
    {"hierarchy_product": hierarchy_product}
)
