"""Rigging benchmark (issue 11, item 8): a campaign of votes for one model among ordinary traffic.

Run from the repository root: `python -m benchmarks.arena_rigging [--quick]`; the last line of stdout
is one JSON object (figures, baseline, targets).

Every vote goes through the real vote path (`arena.votes.record_vote`) on an embedded Postgres, with
the default integrity settings. Battles are written straight into the database just before their vote,
with answers of a fixed length and an answer time set back by the reading time the voter took, so
that the reading rule sees what it would see in service. Ordinary voters (one session and one address
each, a few votes each) read at a human pace and vote by a Bradley-Terry truth; the campaign votes for
the target model on battles that include it, reading nothing, from few address ranges.

Ratings are fitted with `ranking.fit_bradley_terry` on the helpfulness pair counts: the ordinary votes
alone (the baseline), every stored vote (no filters), and the counted pair counts the vote path kept
(filters on). The target is the shift with the filters on against the baseline's 95% interval width.
A second, patient campaign (reads before voting, one vote per session, addresses spread wide) shows
what the rules do not catch.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, text

from arena.integrity import identify
from arena.models import AnswerStatus, Battle, BattleAnswer, BattleStatus, BattleTurn
from arena.schemas import VoteIn
from arena.votes import record_vote
from core.db import create_engine, create_sessionmaker, transaction, utcnow
from core.migrate import upgrade
from core.pgserver import embedded_postgres
from core.settings import Settings
from ranking.bradley_terry import fit_bradley_terry
from ranking.counts import PairCounts
from ranking.intervals import fisher_intervals
from ranking.simulate import outcome_probabilities, tie_parameter_for_share

TRUE_RATINGS = np.array([1000.0, 1030.0, 1060.0, 1090.0, 1120.0, 1150.0])
TARGET = 0  # the weakest model: the campaign pushes it up
ANSWER_WORDS = 60  # per side: 120 words, 8 s at the default 15 words/s
SALT = b"rigging-benchmark"


@dataclass(frozen=True)
class Plan:
    ordinary: int
    campaign: int
    votes_per_ordinary_session: int


def plan(quick: bool) -> Plan:
    return Plan(ordinary=600 if quick else 4000, campaign=500, votes_per_ordinary_session=5)


@dataclass(frozen=True)
class Cast:
    """One vote to cast: the pair (a, b) as shown, the verdict, who casts it and how long they read."""

    who: str  # "ordinary", "campaign" or "patient"
    model_a: int
    model_b: int
    verdict: str
    session: str
    address: str
    read_s: float


def _ordinary(p: Plan, rng: np.random.Generator) -> list[Cast]:
    nu = tie_parameter_for_share(TRUE_RATINGS, 0.25)
    n = len(TRUE_RATINGS)
    votes = []
    for i in range(p.ordinary):
        a, b = rng.choice(n, 2, replace=False)
        probs = outcome_probabilities(TRUE_RATINGS[a], TRUE_RATINGS[b], nu)
        verdict = ("a", "b", "tie")[int(rng.choice(3, p=probs / probs.sum()))]
        session = f"ordinary-{i // p.votes_per_ordinary_session}"
        address = ".".join(str(int(x)) for x in rng.integers(1, 255, 4))  # a range of its own, nearly always
        votes.append(Cast("ordinary", int(a), int(b), verdict, session, address,
                          float(rng.uniform(10.0, 60.0))))
    return votes


def _campaign(p: Plan, rng: np.random.Generator, *, patient: bool) -> list[Cast]:
    n, votes = len(TRUE_RATINGS), []
    for i in range(p.campaign):
        other = int(rng.integers(1, n))
        target_is_a = bool(rng.integers(0, 2))
        a, b = (TARGET, other) if target_is_a else (other, TARGET)
        if patient:  # one vote per session, from anywhere, reading first: looks like anyone
            session, address = f"patient-{i}", ".".join(str(int(x)) for x in rng.integers(1, 255, 4))
            read_s = float(rng.uniform(10.0, 60.0))
        else:  # fast, from three /24 ranges, fifty sessions of ten votes (under the one-sided threshold)
            session, address = f"campaign-{i // 10}", f"203.0.{113 + i % 3}.{int(rng.integers(1, 255))}"
            read_s = float(rng.uniform(0.5, 2.0))
        votes.append(Cast("patient" if patient else "campaign", a, b, "a" if target_is_a else "b",
                          session, address, read_s))
    return votes


async def _models(sessions: Any) -> list[int]:
    from core.registry.models import ContestantStatus
    from core.registry.schemas import ContestantIn
    from server.contestants import register

    ids = []
    async with transaction(sessions) as session:
        for i in range(len(TRUE_RATINGS)):
            entry = ContestantIn(slug=f"rig-{i}", display_name=f"Rig {i}", organisation="Bench",
                                 config={"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": f"m{i}"})
            ids.append((await register(session, entry, ContestantStatus.active, actor="benchmark")).id)
    return ids


async def _battles(sessions: Any, model_ids: list[int], casts: list[Cast]) -> list[uuid.UUID]:
    """Finished battles, one per vote, each started by its voter (written up front, in one transaction)."""
    ids, words = [uuid.uuid4() for _ in casts], " ".join(["word"] * ANSWER_WORDS)
    battles, turns, answers = [], [], []
    for battle_id, cast in zip(ids, casts, strict=True):
        voter = identify(SALT, cast.session, cast.address)
        battles.append({"id": battle_id, "prompt": "A question?", "status": BattleStatus.ready, "sampling_seed": 0,
                        "model_a_id": model_ids[cast.model_a], "model_b_id": model_ids[cast.model_b],
                        "creator_hash": voter.session_hash, "address_hash": voter.address_hash,
                        "created_at": utcnow()})
        turns.append({"battle_id": battle_id, "turn": 1, "prompt": "A question?", "created_at": utcnow()})
        answers += [{"battle_id": battle_id, "turn": 1, "side": side, "status": AnswerStatus.ok, "text": words}
                    for side in "ab"]
    async with transaction(sessions) as session:
        for model, rows in ((Battle, battles), (BattleTurn, turns), (BattleAnswer, answers)):
            await session.execute(insert(model), rows)
    return ids


_ANSWERED = text("UPDATE battles SET answered_at = clock_timestamp() - make_interval(secs => :s) WHERE id = :id")


async def _cast_all(url: str, casts: list[Cast], settings: Settings) -> tuple[dict[str, dict[str, int]], float]:
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    held: dict[str, dict[str, int]] = {}
    try:
        model_ids = await _models(sessions)
        battle_ids = await _battles(sessions, model_ids, casts)
        started = time.perf_counter()
        for battle_id, cast in zip(battle_ids, casts, strict=True):
            async with transaction(sessions) as session:  # the answers were complete read_s ago
                await session.execute(_ANSWERED, {"s": cast.read_s, "id": battle_id})
            out = await record_vote(sessions, battle_id, VoteIn(helpfulness=cast.verdict),
                                    identify(SALT, cast.session, cast.address), key=str(battle_id), settings=settings)
            tally = held.setdefault(cast.who, {"votes": 0, "held": 0})
            tally["votes"] += 1
            tally["held"] += int(not out.vote_counted)
        return held, time.perf_counter() - started
    finally:
        await engine.dispose()


_COUNTED = ("SELECT lo.slug, hi.slug, p.lo_wins, p.hi_wins, p.ties + p.both_bad FROM pair_counts p "
            "JOIN models lo ON lo.id = p.model_lo_id JOIN models hi ON hi.id = p.model_hi_id "
            "WHERE p.dimension = 'helpfulness'")
_STORED = ("SELECT ma.slug, mb.slug, (v.helpfulness = 'a')::int, (v.helpfulness = 'b')::int, "
           "(v.helpfulness IN ('tie', 'both_bad'))::int FROM votes v JOIN battles b ON b.id = v.battle_id "
           "JOIN models ma ON ma.id = b.model_a_id JOIN models mb ON mb.id = b.model_b_id")


def _counts(url: str, query: str) -> PairCounts:
    """Helpfulness counts: the pair counts the vote path kept (_COUNTED), or every stored vote (_STORED)."""
    import psycopg

    from core.db import libpq_url

    models = tuple(f"rig-{i}" for i in range(len(TRUE_RATINGS)))
    with psycopg.connect(libpq_url(url)) as conn:
        rows = conn.execute(query).fetchall()
    return PairCounts.from_records(models, [(a, b, float(x), float(y), float(t)) for a, b, x, y, t in rows])


def _rating(counts: PairCounts) -> tuple[float, float]:
    fit = fit_bradley_terry(counts)
    intervals = fisher_intervals(counts, fit)
    return float(fit.ratings[TARGET]), float(intervals.width[TARGET])


def run_campaign(p: Plan, rng: np.random.Generator, *, patient: bool) -> dict[str, Any]:
    casts = _ordinary(p, rng) + _campaign(p, rng, patient=patient)
    casts = [casts[i] for i in rng.permutation(len(casts))]  # the campaign mixed into the traffic
    settings = Settings(_env_file=None, database_url=None)  # the default rules, caps and limits
    with tempfile.TemporaryDirectory(prefix="libra-rig-", dir="/tmp") as home, \
            embedded_postgres(Path(home) / "pg") as url:
        upgrade(url)
        held, seconds = asyncio.run(_cast_all(url, casts, settings))
        baseline = _baseline(url, casts)
        unfiltered, filtered = _rating(_counts(url, _STORED)), _rating(_counts(url, _COUNTED))
        rules = _flags_by_rule(url)
    base_rating, width = baseline
    return {
        "votes": held, "vote_path_seconds": round(seconds, 2),
        "target_rating_ordinary_only": round(base_rating, 1), "interval_width_95": round(width, 1),
        "shift_without_filters": round(unfiltered[0] - base_rating, 1),
        "shift_with_filters": round(filtered[0] - base_rating, 1),
        "ordinary_votes_held_share": round(held["ordinary"]["held"] / held["ordinary"]["votes"], 4),
        "flags_by_rule": rules,
    }


def _flags_by_rule(url: str) -> dict[str, int]:
    import psycopg

    from core.db import libpq_url

    with psycopg.connect(libpq_url(url)) as conn:
        return dict(conn.execute("SELECT rule, count(*) FROM vote_flags GROUP BY rule ORDER BY rule").fetchall())


def _baseline(url: str, casts: list[Cast]) -> tuple[float, float]:
    """The target's rating and interval width from the ordinary votes alone (no campaign at all)."""
    models = tuple(f"rig-{i}" for i in range(len(TRUE_RATINGS)))
    records = [(models[c.model_a], models[c.model_b], float(c.verdict == "a"), float(c.verdict == "b"),
                float(c.verdict == "tie")) for c in casts if c.who == "ordinary"]
    return _rating(PairCounts.from_records(models, records))


def measure(quick: bool, seed: int = 20261202) -> dict[str, Any]:
    p = plan(quick)
    loud = run_campaign(p, np.random.default_rng([seed, 1]), patient=False)
    quiet = run_campaign(p, np.random.default_rng([seed, 2]), patient=True)
    ratio = abs(loud["shift_with_filters"]) / loud["interval_width_95"]
    return {
        "figures": {"campaign_fast_few_ranges": loud, "campaign_patient_spread": quiet, "plan": p.__dict__,
                    "true_ratings": TRUE_RATINGS.tolist(), "target": f"rig-{TARGET}"},
        "baseline": {"shift_without_filters": loud["shift_without_filters"],
                     "interval_width_95": loud["interval_width_95"]},
        "targets": {"rigging_shift_over_interval_width": {
            "value": round(ratio, 4), "goal": "<= 1 with the filters on (fast campaign from few ranges)",
            "met": ratio <= 1.0}},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer ordinary votes (about a minute)")
    parser.add_argument("--seed", type=int, default=20261202)
    args = parser.parse_args()
    print(json.dumps({"benchmark": "arena_rigging", "quick": args.quick, "seed": args.seed,
                      **measure(args.quick, args.seed)}))


if __name__ == "__main__":
    main()
