"""A test double of the runner's store; production uses the Postgres-backed one in evaluation.repository."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evaluation.runs.store import GenerationRecord
from evaluation.types import ScoredItem


class InMemoryItemStoreForTests:
    """A dict-backed :class:`evaluation.runs.store.ItemStore` that counts saves, for resume tests."""

    def __init__(self) -> None:
        self.generations: dict[str, GenerationRecord] = {}
        self.scores: dict[str, ScoredItem] = {}
        self.generation_saves = 0
        self.score_saves = 0

    async def get_generations(self, fingerprints: Sequence[str]) -> Mapping[str, GenerationRecord]:
        return {fp: self.generations[fp] for fp in fingerprints if fp in self.generations}

    async def save_generations(self, records: Sequence[GenerationRecord]) -> None:
        self.generation_saves += len(records)
        self.generations.update({record.fingerprint: record for record in records})

    async def get_scores(self, fingerprints: Sequence[str]) -> Mapping[str, ScoredItem]:
        return {fp: self.scores[fp] for fp in fingerprints if fp in self.scores}

    async def save_scores(self, records: Sequence[ScoredItem]) -> None:
        self.score_saves += len(records)
        self.scores.update({record.fingerprint: record for record in records})
