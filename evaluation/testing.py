"""Test doubles. Not for production: production uses the Postgres-backed store."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from evaluation.store import GenerationRecord, ScoreRecord


class InMemoryItemStoreForTests:
    """A dict-backed :class:`evaluation.store.ItemStore` that counts saves, for resume tests."""

    def __init__(self) -> None:
        self.generations: dict[str, GenerationRecord] = {}
        self.scores: dict[str, ScoreRecord] = {}
        self.generation_saves = 0
        self.score_saves = 0

    async def get_generations(self, fingerprints: Sequence[str]) -> Mapping[str, GenerationRecord]:
        return {fp: self.generations[fp] for fp in fingerprints if fp in self.generations}

    async def save_generations(self, records: Sequence[GenerationRecord]) -> None:
        self.generation_saves += len(records)
        self.generations.update({record.fingerprint: record for record in records})

    async def get_scores(self, fingerprints: Sequence[str]) -> Mapping[str, ScoreRecord]:
        return {fp: self.scores[fp] for fp in fingerprints if fp in self.scores}

    async def save_scores(self, records: Sequence[ScoreRecord]) -> None:
        self.score_saves += len(records)
        self.scores.update({record.fingerprint: record for record in records})
