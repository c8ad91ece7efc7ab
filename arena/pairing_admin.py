"""What maintainers see and change of pairing: weights per model (with the boost they get) and pauses.

Shared by the admin API (server/api/pairing.py) and the CLI (`libra arena ...`); audited like other
admin actions, in the caller's transaction.
"""

import math
from datetime import datetime

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from arena import health, pairing
from arena import pairing_repository as repo
from arena.models import PairingWeight
from core.audit import repository as audit
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings

MAX_WEIGHT = 1000.0


class WeightIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weight: float = Field(ge=0, le=MAX_WEIGHT, description="Draw weight: 1 normal, 0 never drawn.")
    note: str | None = Field(default=None, max_length=500, description="Why (shown to other maintainers).")

    @field_validator("weight")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError("the weight must be a finite number")
        return value

    @field_validator("note")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and any(ord(c) < 32 and c not in "\n\t" for c in value):
            raise ValueError("the note may not hold control characters")
        return value.strip() or None if value is not None else None


class WeightOut(BaseModel):
    slug: str
    status: str
    weight: float  # 1 when no row is stored
    note: str | None
    updated_by: str | None
    updated_at: datetime | None
    counted_votes: int
    boost: float  # the new-model factor it gets now
    paused: bool
    draw_share: float  # chance that the next battle includes it, under the current policy and scores


class PausedOut(BaseModel):
    slug: str
    failures_in_row: int
    last_error: str | None
    last_failure_at: datetime | None
    paused_at: datetime


async def draw_shares(session: AsyncSession, settings: Settings | None) -> dict[int, float]:
    """Per drawable model, the probability that the next draw includes it (0 for the others)."""
    record, known = await pairing.draw_inputs(session, np.random.default_rng(0), settings)
    pairs, probabilities = pairing.pair_probabilities(record, known)
    shares: dict[int, float] = {}
    for (lo, hi), p in zip(pairs, probabilities, strict=True):
        shares[lo] = shares.get(lo, 0.0) + float(p)
        shares[hi] = shares.get(hi, 0.0) + float(p)
    return shares


def _weight_out(model: Contestant, row: PairingWeight | None, votes: int, paused: bool,
                settings: Settings | None, share: float = 0.0) -> WeightOut:
    return WeightOut(slug=model.slug, status=model.status.value, weight=row.weight if row else 1.0,
                     note=row.note if row else None, updated_by=row.updated_by if row else None,
                     updated_at=row.updated_at if row else None, counted_votes=votes,
                     boost=pairing.boost_of(votes, settings), paused=paused, draw_share=round(share, 6))


async def list_weights(session: AsyncSession, settings: Settings | None) -> list[WeightOut]:
    """Every model that can enter the arena (active), with its weight, boost and pause state."""
    stored, votes = await repo.weights(session), await repo.counted_votes(session)
    paused, shares = await repo.paused_ids(session), await draw_shares(session, settings)
    return [_weight_out(m, stored.get(m.id), votes.get(m.id, 0), m.id in paused, settings, shares.get(m.id, 0.0))
            for m in await registry.list_all(session, ContestantStatus.active)]


async def set_weight(session: AsyncSession, slug: str, change: WeightIn, actor: str,
                     settings: Settings | None) -> WeightOut:
    """Stores a model's weight (any status: a pending model keeps it for when it is approved)."""
    model = await registry.get_by_slug(session, slug)
    before = (await repo.weights(session)).get(model.id)
    row = await repo.set_weight(session, model.id, change.weight, change.note, actor[:64])
    audit.record(session, actor, "arena.weight.set", f"model:{model.slug}", weight=change.weight,
                 previous=before.weight if before else 1.0, note=change.note)
    votes = (await repo.counted_votes(session)).get(model.id, 0)
    share = (await draw_shares(session, settings)).get(model.id, 0.0)
    return _weight_out(model, row, votes, model.id in await repo.paused_ids(session), settings, share)


async def list_paused(session: AsyncSession) -> list[PausedOut]:
    return [PausedOut(slug=p.slug, failures_in_row=p.failures_in_row, last_error=p.last_error,
                      last_failure_at=p.last_failure_at, paused_at=p.paused_at)
            for p in await health.paused_models(session)]


async def resume(session: AsyncSession, slug: str, actor: str) -> None:
    await health.resume(session, slug)
    audit.record(session, actor, "arena.model.resumed", f"model:{slug}")
