"""Which two models meet: maintainer weights, a new-model boost and active pairing, seeded and replayable.

P(pair) is proportional to score x weight_a x weight_b x boost_a x boost_b over the drawable models
(active, not paused, weight > 0). Under the "active" policy the score is the pair's expected drop of
the ranking's uncertainty (ranking.active, refreshed by `refresh_scores`); a pair without a score yet
(a new model) gets the highest current score, so it is drawn at least as readily as the most useful
known pair. Under "uniform" every score is 1. The draw's own seed comes from the battle's generator,
and `Draw.record` holds every input but the scores, which it names by their refresh's version (kept in
arena_pair_scores, written once per refresh rather than once per battle: n(n-1)/2 floats a battle were
102 kB at 100 models). `replay_draw(record, scores)` with that version's scores gives the same pair with
no database; `replay_stored` loads them.
"""

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from psycopg import AsyncConnection
from sqlalchemy.ext.asyncio import AsyncSession

from arena import pairing_repository as repo
from arena import repository as arena_repo
from core.errors import LibraError
from core.registry import repository as registry
from core.registry.models import Contestant, ContestantStatus
from core.settings import Settings
from ranking import fit_bradley_terry
from ranking.active import choose_pair, draw_probabilities, fill_missing, pair_scores
from ranking.counts import PairCounts

log = logging.getLogger(__name__)

# 1: the record held the scores of every pair (records stored before version 2 still replay);
# 2: it names their version ("scores_version") instead.
RECORD_VERSION = 2


@dataclass(frozen=True)
class Draw:
    model_a: Contestant
    model_b: Contestant
    # Stored in battles.pairing: with battles.sampling_seed, enough to replay the draw.
    record: dict[str, Any] = field(default_factory=dict)


def _no_pair() -> LibraError:
    return LibraError("the arena needs at least two active models", status=503, code="no_pair")


def _setting(settings: Settings | None, name: str, default: Any) -> Any:
    return getattr(settings, name, default) if settings is not None else default


def boost_of(votes: int, settings: Settings | None) -> float:
    """The draw factor of a model with `votes` counted votes: boosted until it has enough."""
    if votes < int(_setting(settings, "arena_new_model_votes", 30)):
        return float(_setting(settings, "arena_new_model_boost", 3.0))
    return 1.0


def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(n, k=1)


Known = dict[tuple[int, int], float]  # a refresh's scores by (low id, high id)


def _in_order(models: list[int], known: Known) -> np.ndarray:
    """Scores in triu order of `models` (sorted ids, so low id first); unknown pairs get the top score."""
    a, b = _pairs(len(models))
    return fill_missing(np.array([known.get((models[i], models[j]), np.nan) for i, j in zip(a, b, strict=True)],
                                 dtype=np.float64))


def record_scores(record: dict[str, Any], known: Known | None = None) -> np.ndarray:
    """Each pair's score in the draw, in the order of `pair_probabilities`' pairs (triu order of the models)."""
    if record.get("scores") is not None:  # a version 1 record carries them
        return np.asarray(record["scores"], dtype=np.float64)
    if record.get("policy") != "active":
        return np.ones(len(_pairs(len(record["models"]))[0]))
    if known is None and record.get("scores_version") is not None:
        raise ValueError(f"replaying this draw needs the scores of version {record['scores_version']}")
    return _in_order([int(m) for m in record["models"]], known or {})


def pair_probabilities(record: dict[str, Any], known: Known | None = None) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The unordered pairs (low id first) of a recorded draw and the probability of each; `known` holds the
    scores of the record's `scores_version` (not needed for a version 1 record or under "uniform")."""
    models = [int(m) for m in record["models"]]
    a, b = _pairs(len(models))
    factor = np.asarray(record["weights"], dtype=np.float64) * np.asarray(record["boosts"], dtype=np.float64)
    pairs = [(models[int(i)], models[int(j)]) for i, j in zip(a, b, strict=True)]
    return pairs, draw_probabilities(record_scores(record, known), factor[a], factor[b])


def replay_draw(record: dict[str, Any], known: Known | None = None) -> tuple[int, int]:
    """(model A id, model B id) of a recorded draw; the draw itself is this function, so a replay matches."""
    pairs, probabilities = pair_probabilities(record, known)
    if not probabilities.any():  # fewer than two drawable models
        raise _no_pair()
    pair, first_is_a = choose_pair(probabilities, np.random.default_rng(int(record["seed"])))
    lo, hi = pairs[pair]
    return (lo, hi) if first_is_a else (hi, lo)


async def replay_stored(session: AsyncSession, record: dict[str, Any]) -> tuple[int, int]:
    """`replay_draw` of a stored record, with the scores of its version read from the database."""
    version = record.get("scores_version")
    known = await repo.scores_of(session, int(version)) if version is not None and "scores" not in record else None
    return replay_draw(record, known)


def _policy(settings: Settings | None) -> str:
    return str(_setting(settings, "arena_pairing", "active"))


def _inputs_from(drawable: repo.Drawable, scores: repo.Scores | None, rng: np.random.Generator,
                 settings: Settings | None) -> tuple[dict[str, Any], Known, dict[int, Contestant]]:
    """Every input of one draw (the drawable models, their weights and boosts, the scores' version, a
    seed), the scores themselves, and the drawable models by id."""
    candidates = [(m, w, votes) for m, w, votes in drawable if w > 0]
    policy = _policy(settings)
    version, known = scores if scores is not None and policy == "active" else (None, {})
    record: dict[str, Any] = {
        "v": RECORD_VERSION, "policy": policy, "seed": int(rng.integers(0, 2**31)),
        "models": [m.id for m, _, _ in candidates], "weights": [w for _, w, _ in candidates],
        "boosts": [boost_of(v, settings) for _, _, v in candidates], "scores_version": version,
    }
    return record, known, {m.id: m for m, _, _ in candidates}


async def _inputs(session: AsyncSession, rng: np.random.Generator,
                  settings: Settings | None) -> tuple[dict[str, Any], Known, dict[int, Contestant]]:
    drawable = await repo.drawable(session)
    scores = await repo.scores(session) if _policy(settings) == "active" else None
    return _inputs_from(drawable, scores, rng, settings)


async def draw_inputs(session: AsyncSession, rng: np.random.Generator,
                      settings: Settings | None) -> tuple[dict[str, Any], Known]:
    """What `draw` would store in battles.pairing for this generator, and the scores it would draw with
    (no pair is chosen)."""
    record, known, _ = await _inputs(session, rng, settings)
    return record, known


def _drawn(record: dict[str, Any], known: Known, models: dict[int, Contestant]) -> Draw:
    a_id, b_id = replay_draw(record, known)
    return Draw(models[a_id], models[b_id], record)


async def draw(session: AsyncSession, rng: np.random.Generator, settings: Settings | None = None) -> Draw:
    return _drawn(*await _inputs(session, rng, settings))


async def draw_on(conn: AsyncConnection, rng: np.random.Generator, settings: Settings | None = None) -> Draw:
    """`draw` on the driver's own connection (autocommit): both reads in one round trip, no ORM session;
    the battle-creation path, where a session's unit of work cost more CPU than the database did."""
    active = _policy(settings) == "active"
    async with conn.pipeline():
        drawable = await conn.execute(repo.DRAWABLE_SQL)
        scores = await conn.execute(repo.SCORES_SQL) if active else None
    found = repo.score_rows(await scores.fetchall()) if scores is not None else None
    return _drawn(*_inputs_from(repo.drawable_rows(await drawable.fetchall()), found, rng, settings))


def scores_from_counts(ids: list[int], counts: PairCounts) -> list[tuple[int, int, float]]:
    """(low id, high id, score) for the pairs of rated models of the current fit."""
    fit = fit_bradley_terry(counts)
    found = pair_scores(counts, fit)
    rows = []
    for i, j, score in zip(found.a, found.b, found.score, strict=True):
        lo, hi = sorted((ids[int(i)], ids[int(j)]))
        if np.isfinite(score):
            rows.append((lo, hi, float(score)))
    return rows


async def refresh_scores(session: AsyncSession) -> tuple[int, int]:
    """Recomputes every pair score from the helpfulness counts of the active models; (version, pairs)."""
    ids = sorted(m.id for m in await registry.list_all(session, ContestantStatus.active))
    index = {m: str(m) for m in ids}
    records = [(index[r.model_lo_id], index[r.model_hi_id], r.lo_wins, r.hi_wins, r.ties + r.both_bad)
               for r in await arena_repo.pair_counts(session, "helpfulness")
               if r.model_lo_id in index and r.model_hi_id in index]
    rows = scores_from_counts(ids, PairCounts.from_records([index[m] for m in ids], records)) if records else []
    version = await repo.add_scores(session, rows)
    log.info("arena.pairing.scores_refreshed", extra={"version": version, "pairs": len(rows), "models": len(ids)})
    return version, len(rows)
