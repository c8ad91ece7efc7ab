"""Every exported draw, replayed from the export alone (`libra replay-draws`, issue 11, items 5 and 10).

A battle's draw record (`pairing` in `libra export votes`) holds its seed, the models it chose among,
their weights and boosts, and the version of the pair scores it used; `libra export pair-scores` gives
those versions. With both files a third party can check, without the database, that each battle's two
models are the ones its seed drew (`arena.pairing.replay_draw`, the very function the service draws
with), and so that nobody picked who met whom by hand.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from arena.pairing import Known, replay_draw
from core.errors import LibraError

REPORT_AT_MOST = 20  # mismatches named one by one; the rest are counted


@dataclass
class DrawCheck:
    """What replaying an export's draws found."""

    reproduced: int = 0
    by_policy: dict[str, int] = field(default_factory=dict)  # reproduced draws per pairing policy
    without_record: int = 0  # battles stored without a replayable draw record (e.g. written by hand)
    mismatches: list[str] = field(default_factory=list)  # the first REPORT_AT_MOST, one line each
    mismatched: int = 0
    missing_versions: dict[int, int] = field(default_factory=dict)  # score version -> battles that need it

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.missing_versions


def known_scores(versions: Iterable[Mapping[str, Any]]) -> dict[int, Known]:
    """Each version's scores by (low model id, high model id), from `libra export pair-scores` records."""
    known: dict[int, Known] = {}
    for number, record in enumerate(versions, 1):
        try:
            known[int(record["scores_version"])] = {(int(lo), int(hi)): float(score)
                                                    for lo, hi, score in record["scores"]}
        except (KeyError, TypeError, ValueError) as exc:
            raise LibraError(f"pair-scores record {number} is not one of `libra export pair-scores` "
                             f"({type(exc).__name__}: {exc})") from None
    return known


def _replayable(pairing: Any) -> bool:
    return isinstance(pairing, dict) and all(key in pairing for key in ("seed", "models", "weights", "boosts"))


def check(records: Iterable[Mapping[str, Any]], known: Mapping[int, Known]) -> DrawCheck:
    """Replays the draw of every export record and compares the pair with the record's model A and B."""
    found = DrawCheck()
    for number, record in enumerate(records, 1):
        try:
            _check_one(record, known, found)
        except (KeyError, TypeError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
            raise LibraError(f"export record {number} is not one of `libra export votes` "
                             f"({type(exc).__name__}: {exc})") from None
    return found


def _check_one(record: Mapping[str, Any], known: Mapping[int, Known], found: DrawCheck) -> None:
    battle, stored = record["battle_id"], (record["model_a"], record["model_b"])  # KeyError: not an export record
    pairing = json.loads(record["pairing"]) if isinstance(record.get("pairing"), str) else record.get("pairing")
    slugs = record.get("draw_models")
    if not _replayable(pairing) or not isinstance(slugs, list) or len(slugs) != len(pairing["models"]):
        found.without_record += 1
        return
    version = pairing.get("scores_version")
    needs_scores = pairing.get("policy") == "active" and version is not None and "scores" not in pairing
    if needs_scores and int(version) not in known:
        found.missing_versions[int(version)] = found.missing_versions.get(int(version), 0) + 1
        return
    try:
        a, b = replay_draw(pairing, known.get(int(version)) if needs_scores else None)
    except LibraError:  # every pair's chance is 0: no real draw stores such a record
        a = b = None
    slug_of = dict(zip((int(m) for m in pairing["models"]), slugs, strict=True))
    drawn = (slug_of.get(a), slug_of.get(b))
    if drawn == stored:
        found.reproduced += 1
        policy = str(pairing.get("policy"))
        found.by_policy[policy] = found.by_policy.get(policy, 0) + 1
        return
    found.mismatched += 1
    if len(found.mismatches) < REPORT_AT_MOST:
        found.mismatches.append(f"battle {battle}: stored A={stored[0]} B={stored[1]}, "
                                f"its seed draws A={drawn[0]} B={drawn[1]}")
