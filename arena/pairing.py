"""Which two models meet: maintainer weights, a new-model boost and active pairing, seeded and replayable.

P(pair) is proportional to score x weight_a x weight_b x boost_a x boost_b over the drawable models
(active, not paused, weight > 0). Under the "active" policy the score is the pair's expected drop of
the ranking's uncertainty (ranking.active, refreshed by `refresh_scores`); a pair without a score yet
(a new model) gets the highest current score, so it is drawn at least as readily as the most useful
known pair. Under "uniform" every score is 1. The draw's own seed comes from the battle's generator,
and `Draw.record` holds every input but the scores, which it names by their refresh's version (kept in
arena_pair_scores, written once per refresh rather than once per battle: n(n-1)/2 floats a battle were
102 kB at 100 models). `replay_draw(record, known)` with that version's scores gives the same pair with
no database; `replay_stored` loads them.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import lru_cache
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


@lru_cache(maxsize=32)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of n models as index arrays, in np.triu_indices order (read only: they are shared)."""
    a, b = np.triu_indices(n, k=1)
    a.flags.writeable = b.flags.writeable = False
    return a, b


Known = repo.Known


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


def _probabilities(record: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    a, b = _pairs(len(record["models"]))
    factor = np.asarray(record["weights"], dtype=np.float64) * np.asarray(record["boosts"], dtype=np.float64)
    return draw_probabilities(scores, factor[a], factor[b])


def _choose(record: dict[str, Any], probabilities: np.ndarray) -> tuple[int, int]:
    """The draw itself: (model A id, model B id) from the pairs' probabilities and the record's seed."""
    if not probabilities.any():  # fewer than two drawable models
        raise _no_pair()
    pair, first_is_a = choose_pair(probabilities, np.random.default_rng(int(record["seed"])))
    a, b = _pairs(len(record["models"]))
    lo, hi = int(record["models"][a[pair]]), int(record["models"][b[pair]])
    return (lo, hi) if first_is_a else (hi, lo)


def pair_probabilities(record: dict[str, Any], known: Known | None = None) -> tuple[list[tuple[int, int]], np.ndarray]:
    """The unordered pairs (low id first) of a recorded draw and the probability of each; `known` holds the
    scores of the record's `scores_version` (not needed for a version 1 record or under "uniform")."""
    models = [int(m) for m in record["models"]]
    a, b = _pairs(len(models))
    pairs = [(models[int(i)], models[int(j)]) for i, j in zip(a, b, strict=True)]
    return pairs, _probabilities(record, record_scores(record, known))


def replay_draw(record: dict[str, Any], known: Known | None = None) -> tuple[int, int]:
    """(model A id, model B id) of a recorded draw, with the same functions the draw ran, so a replay matches."""
    return _choose(record, _probabilities(record, record_scores(record, known)))


async def replay_stored(session: AsyncSession, record: dict[str, Any]) -> tuple[int, int]:
    """`replay_draw` of a stored record, with the scores of its version read from the database."""
    version = record.get("scores_version")
    known = await repo.scores_of(session, int(version)) if version is not None and "scores" not in record else None
    return replay_draw(record, known)


class _ScoreCache:
    """Refreshes' scores, read once per process, and in triu order of the drawable models, built once per
    set of models: at 100 models, reading 4,950 rows and ordering them took most of a draw's 24 ms of CPU.
    A version's rows never change once written (`repo.Latest` names them), so a copy is never stale."""

    KEEP = 2  # versions (a draw that read the latest just before a refresh may still ask for the previous)

    def __init__(self) -> None:
        self._known: dict[repo.Latest, Known] = {}
        self._ordered: dict[tuple[repo.Latest, tuple[int, ...]], np.ndarray] = {}

    def known(self, latest: repo.Latest) -> Known | None:
        return self._known.get(latest)

    def keep(self, latest: repo.Latest, known: Known) -> Known:
        if len(self._known) >= self.KEEP:
            self._known.clear()
        self._known[latest] = known
        return known

    def in_order(self, latest: repo.Latest, known: Known, models: list[int]) -> np.ndarray:
        """`known` (the scores of `latest`) in triu order of `models`."""
        key = (latest, tuple(models))
        found = self._ordered.get(key)
        if found is None:
            if len(self._ordered) >= 8:  # new versions or sets of models: start again
                self._ordered.clear()
            found = self._ordered[key] = _in_order(models, known)
            found.flags.writeable = False
        return found


_cache = _ScoreCache()


async def _known(latest: repo.Latest | None, read: Callable[[int], Awaitable[Known]]) -> Known:
    """The scores of the latest version ({} when there is none), read with `read` unless kept already."""
    if latest is None:
        return {}
    kept = _cache.known(latest)
    return kept if kept is not None else _cache.keep(latest, await read(latest.version))


def _policy(settings: Settings | None) -> str:
    return str(_setting(settings, "arena_pairing", "active"))


@dataclass(frozen=True)
class _Inputs:
    record: dict[str, Any]  # what battles.pairing stores
    known: Known  # the scores of record["scores_version"] ({} when none)
    scores: np.ndarray  # each pair's score, in triu order of record["models"]
    models: dict[int, repo.DrawableModel]


def _inputs_from(drawable: repo.Drawable, latest: repo.Latest | None, known: Known, rng: np.random.Generator,
                 settings: Settings | None) -> _Inputs:
    """Every input of one draw: the drawable models, their weights and boosts, the scores' version (with
    `known`, its scores) and a seed."""
    candidates = [m for m in drawable if m.weight > 0]
    ids = [m.id for m in candidates]
    policy = _policy(settings)
    if policy != "active":
        latest, known = None, {}
    record: dict[str, Any] = {
        "v": RECORD_VERSION, "policy": policy, "seed": int(rng.integers(0, 2**31)), "models": ids,
        "weights": [m.weight for m in candidates], "boosts": [boost_of(m.votes, settings) for m in candidates],
        "scores_version": latest.version if latest is not None else None,
    }
    scores = _cache.in_order(latest, known, ids) if latest is not None else record_scores(record, known)
    return _Inputs(record, known, scores, {m.id: m for m in candidates})


async def _inputs(session: AsyncSession, rng: np.random.Generator, settings: Settings | None) -> _Inputs:
    drawable = await repo.drawable(session)
    latest = await repo.latest(session) if _policy(settings) == "active" else None
    known = await _known(latest, lambda version: repo.scores_of(session, version))
    return _inputs_from(drawable, latest, known, rng, settings)


async def draw_inputs(session: AsyncSession, rng: np.random.Generator,
                      settings: Settings | None) -> tuple[dict[str, Any], Known]:
    """What `draw` would store in battles.pairing for this generator, and the scores of its version
    (no pair is chosen)."""
    found = await _inputs(session, rng, settings)
    return found.record, found.known


def _drawn(found: _Inputs) -> Draw:
    a_id, b_id = _choose(found.record, _probabilities(found.record, found.scores))
    return Draw(found.models[a_id].model(), found.models[b_id].model(), found.record)


async def draw(session: AsyncSession, rng: np.random.Generator, settings: Settings | None = None) -> Draw:
    return _drawn(await _inputs(session, rng, settings))


async def draw_on(conn: AsyncConnection, rng: np.random.Generator, settings: Settings | None = None) -> Draw:
    """`draw` on the driver's own connection (autocommit): both reads in one round trip, no ORM session;
    the battle-creation path, where a session's unit of work cost more CPU than the database did. The
    scores themselves are read only when a refresh has written a new version."""
    active = _policy(settings) == "active"
    async with conn.pipeline():
        drawable = await conn.execute(repo.DRAWABLE_SQL)
        newest = await conn.execute(repo.LATEST_SQL) if active else None
    latest = repo.latest_row(await newest.fetchone()) if newest is not None else None
    known = await _known(latest, lambda version: repo.scores_on(conn, version))
    return _drawn(_inputs_from(repo.drawable_rows(await drawable.fetchall()), latest, known, rng, settings))


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
