"""Tasks as data: a source, a prompt template, a scorer and metadata, declared in YAML.

A task's version is a content hash of its declaration and of its data, so editing a prompt,
a scorer option or a single dataset row gives a new version without anyone bumping a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from evaluation.hashing import content_hash
from evaluation.scoring import SCORER_KINDS
from evaluation.scoring.verdicts import Expectation
from evaluation.tasks.sources import LoadedData, SourceSpec
from evaluation.tasks.taxonomy import check_harm_tags
from evaluation.tasks.templates import PromptTemplate
from evaluation.types import Axis, Item, Provenance

CATEGORIES: Mapping[Axis, tuple[str, ...]] = MappingProxyType(
    {
        Axis.CAPABILITY: ("knowledge", "reasoning", "instruction_following"),
        Axis.SAFETY: ("direct_risk", "adversarial", "instruction_hierarchy", "over_refusal"),
    }
)

# The verdict table's expectations (evaluation/scoring/verdicts.py): refuse, comply, care.
_EXPECTATIONS = tuple(e.value for e in Expectation)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    axis: Axis
    category: str
    source: SourceSpec
    template: PromptTemplate
    scorer: Mapping[str, Any]
    description: str = ""
    harm_category: str | None = None
    severity: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    """The declaration as written, hashed into the version."""

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES[self.axis]:
            raise ValueError(f"task {self.name}: category {self.category!r} not in {CATEGORIES[self.axis]}")
        if self.scorer.get("kind") not in SCORER_KINDS:
            raise ValueError(f"task {self.name}: unknown scorer {self.scorer.get('kind')!r}")
        if self.scorer.get("kind") == "refusal" and self.scorer.get("expect") not in _EXPECTATIONS:
            raise ValueError(f"task {self.name}: a refusal scorer needs expect: one of {_EXPECTATIONS}")
        if self.harm_category is not None:
            check_harm_tags(self.harm_category, self.severity or "")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> TaskSpec:
        return cls(
            name=str(raw["name"]),
            axis=Axis(raw["axis"]),
            category=str(raw["category"]),
            source=SourceSpec.from_mapping(raw["source"]),
            template=PromptTemplate.from_mapping(raw["template"]),
            scorer=dict(raw["scorer"]),
            description=str(raw.get("description", "")),
            harm_category=raw.get("harm_category"),
            severity=raw.get("severity"),
            raw=dict(raw),
        )


@dataclass(frozen=True)
class LoadedTask:
    """A task with its items read and its version computed."""

    spec: TaskSpec
    items: tuple[Item, ...]
    provenance: Provenance
    version: str

    @property
    def name(self) -> str:
        return self.spec.name

    def public_items(self) -> tuple[Item, ...]:
        """Items that may be shown by the API or exported: never the held-out ones."""
        return tuple(item for item in self.items if not item.held_out)

    def item_labels(self, item: Item) -> dict[str, Any]:
        """Labels that travel with each result row into aggregation and the UI."""
        labels: dict[str, Any] = {
            "task": self.name,
            "axis": self.spec.axis.value,
            "category": self.spec.category,
            "cluster": self.cluster(item),
        }
        harm = item.meta.get("harm_category", self.spec.harm_category)
        if harm is not None:
            labels["harm_category"] = harm
            labels["severity"] = item.meta.get("severity", self.spec.severity)
        return labels

    def cluster(self, item: Item) -> str:
        """The unit that is resampled as one: the base prompt with all its attack wrappings.

        Tasks that read the same source (the direct risky prompts and each adversarial wrapping of
        them) give an item the same cluster, so its answers are not counted as independent draws.
        An item may name its own cluster in ``meta`` (e.g. rephrasings of one request).
        """
        if "cluster" in item.meta:
            return str(item.meta["cluster"])
        source = self.spec.source
        return f"{source.package or source.kind}:{source.path}#{item.id}"


def load_task(spec: TaskSpec, data: LoadedData) -> LoadedTask:
    version = content_hash({"task": spec.raw, "data": data.provenance.version}, 16)
    return LoadedTask(spec=spec, items=data.items, provenance=data.provenance, version=version)
