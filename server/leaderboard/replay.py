"""`libra replay`: the arena part of a published snapshot, recomputed from an export (issue 11, item 10).

A snapshot records its config and seeds, the highest vote id it read, the votes approved in review
by then, and its board's models in fit order (`service.replay_record`). From an export's records,
the votes that snapshot counted are those up to that id that were never excluded or were approved by
then; their pair counts and style cells, with the recorded config, give the same boards, bootstrap
draws included. The evaluation part of a snapshot rests on item scores that are not exported (held-out
items among them), so the replay covers each row's `arena` ratings and `votes` only.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import ranking
from ranking.style import vote_cell

_SIDES = ("a", "b")
_FEATURES = ("length", "headers", "lists", "bold")


@dataclass(frozen=True)
class Replayed:
    arena: dict[str, dict[str, Any]]  # slug -> the row's "arena" object
    votes: dict[str, dict[str, int]]  # slug -> the row's "votes" object
    counted: dict[str, int]  # counted votes per dimension, as the snapshot recorded them


def counted(record: Mapping[str, Any], cutoff: int, approved: frozenset[int]) -> bool:
    vote = record["vote"]
    if vote["id"] > cutoff:
        return False
    return vote["excluded_reason"] is None or (vote["excluded_reason"] == "review" and vote["id"] in approved)


def _side_style(record: Mapping[str, Any]) -> dict[str, list[int]]:
    totals = {side: [0, 0, 0, 0] for side in _SIDES}
    for turn in record["turns"]:
        for answer in turn["answers"]:
            for k, name in enumerate(_FEATURES):
                totals[answer["side"]][k] += answer["style"][name]
    return totals


class _Tally:
    """Pair counts per dimension and style cells, in the snapshot's orientation (lower index first)."""

    def __init__(self, models: Sequence[str]) -> None:
        self.index = {slug: i for i, slug in enumerate(models)}
        self.pairs: dict[str, dict[tuple[int, int], np.ndarray]] = {"helpfulness": {}, "safety": {}}
        self.cells: dict[tuple[int, int, int], np.ndarray] = {}

    def add(self, record: Mapping[str, Any]) -> None:
        a, b = record["model_a"], record["model_b"]
        if a not in self.index or b not in self.index:
            return
        ia, ib = self.index[a], self.index[b]
        a_is_lo = ia < ib
        lo, hi = (ia, ib) if a_is_lo else (ib, ia)
        for dimension in ("helpfulness", "safety"):
            verdict = record["vote"][dimension]
            if verdict is not None:
                self.pairs[dimension].setdefault((lo, hi), np.zeros(3))[_column(verdict, a_is_lo)] += 1
        style = _side_style(record)
        joint_bin, z = vote_cell(*((style["a"], style["b"]) if a_is_lo else (style["b"], style["a"])))
        cell = self.cells.setdefault((lo, hi, joint_bin), np.zeros(7))
        cell[_column(record["vote"]["helpfulness"], a_is_lo)] += 1
        cell[3:] += z

    def counts(self, models: Sequence[str], dimension: str) -> ranking.PairCounts | None:
        rows = [(models[lo], models[hi], *map(float, n)) for (lo, hi), n in self.pairs[dimension].items()]
        return ranking.PairCounts.from_records(models, rows) if rows else None

    def style(self, models: Sequence[str]) -> ranking.StyleCounts | None:
        if not self.cells:
            return None
        keys = np.array(list(self.cells), dtype=np.int64)
        table = np.array(list(self.cells.values()))
        return ranking.StyleCounts.from_cells(models, keys[:, 0], keys[:, 1], keys[:, 2], table[:, :3],
                                              table[:, 3:])

    def games(self, models: Sequence[str], dimension: str) -> dict[str, int]:
        games = dict.fromkeys(models, 0)
        for (lo, hi), n in self.pairs[dimension].items():
            games[models[lo]] += int(n.sum())
            games[models[hi]] += int(n.sum())
        return games


def _column(verdict: str, a_is_lo: bool) -> int:
    """0 = lower model wins, 1 = higher wins, 2 = tie (both bad counts as a tie, as in the fit)."""
    if verdict in ("tie", "both_bad"):
        return 2
    return 0 if (verdict == "a") == a_is_lo else 1


def replay(config: Mapping[str, Any], records: Iterable[Mapping[str, Any]]) -> Replayed:
    """The arena ratings of the snapshot whose recorded config is `config`, from export records."""
    from server.leaderboard import service

    record = config["replay"]
    models = list(record["models"])
    cutoff, approved = int(record["max_vote_id"]), frozenset(record["approved_votes"])
    tally, totals = _Tally(models), {"helpfulness": 0, "safety": 0}
    for item in records:
        if counted(item, cutoff, approved):
            totals["helpfulness"] += 1
            totals["safety"] += item["vote"]["safety"] is not None
            tally.add(item)
    snapshot_config = ranking.SnapshotConfig.from_dict(dict(config))
    part = ranking.snapshot.arena_part(tally.counts(models, "helpfulness"), tally.counts(models, "safety"),
                                       tally.style(models), snapshot_config)
    helpful, safe = tally.games(models, "helpfulness"), tally.games(models, "safety")
    return Replayed(
        arena={slug: service.arena_ratings(part, slug) for slug in models},
        votes={slug: {"helpfulness": helpful[slug], "safety": safe[slug]} for slug in models},
        counted=totals,
    )


def differences(payload: Mapping[str, Any], replayed: Replayed) -> list[str]:
    """Every way the published rows differ from the replay; [] when they are equal."""
    found = []
    for row in payload["models"]:
        slug = row["slug"]
        for key, value in (("arena", replayed.arena.get(slug)), ("votes", replayed.votes.get(slug))):
            if row.get(key) != value:
                found.append(f"{slug}.{key}: published {row.get(key)!r}, replayed {value!r}")
    return found
