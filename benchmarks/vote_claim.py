"""What the vote's claim costs Postgres with answers of a realistic length (issue 11, item 9).

The claim (`arena.vote_store._CLAIM`) reads the words the voter just read, for the reading-time rule. It
takes them from the answers' style lengths, counted when the answers were stored; an answer stored
without them (before style features existed, or written by hand) is split into words by the claim
itself, which is what every claim did before 2026-12-04. Both paths run the same statement, so this
times the statement on battles whose answers carry their lengths (figures) against battles whose
answers do not (baseline), in alternating rounds, at a few answer lengths. The arena benchmark's stub
answers have 3 words, so it cannot show this.

    python -m benchmarks.vote_claim [--quick]

Prints one JSON object last: {"figures", "baseline", "targets"}. The target is the project's own (no
issue names one): with two answers of 330 words, a claim costs at most 0.75 of counting them at vote time.
"""

import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

from arena.vote_store import _CLAIM
from benchmarks.arena_snapshot import add_models
from core.db import libpq_url
from core.migrate import upgrade
from core.pgserver import embedded_postgres

LENGTHS = (5, 330)  # words per answer: a one-liner, and a typical chat answer of about 2 kB
TARGET_WORDS = 330
BATTLES = 50


def _battles(conn: psycopg.Connection, words: int, counted: bool) -> list[uuid.UUID]:
    """Ready battles with two answers of ``words`` words; ``counted``: their style lengths stored."""
    text = " ".join(["photosynthesis"] * words)
    a, b = (row[0] for row in conn.execute("SELECT id FROM models ORDER BY id LIMIT 2"))
    made = []
    for _ in range(BATTLES):
        battle = uuid.uuid4()
        conn.execute("INSERT INTO battles (id, prompt, status, model_a_id, model_b_id, sampling_seed, created_at, "
                     "answered_at, turns, pairing) VALUES (%s, 'q', 'ready', %s, %s, 1, now(), now(), 1, '{}')",
                     (battle, a, b))
        conn.execute("INSERT INTO battle_turns (battle_id, turn, prompt, created_at) VALUES (%s, 1, 'q', now())",
                     (battle,))
        for side in "ab":
            conn.execute("INSERT INTO battle_answers (battle_id, turn, side, status, text, style_length) "
                         "VALUES (%s, 1, %s, 'ok', %s, %s)", (battle, side, text, words if counted else 0))
        made.append(battle)
    return made


def _round_ms(conn: psycopg.Connection, battles: list[uuid.UUID], claims: int) -> float:
    """Wall ms per claim (autocommit: each claim's lock ends with it), one claim after another."""
    params = {"key": "bench", "window_min": 60, "burst_s": 60, "burst_most": 60, "session": "s", "address": "a",
              "network": "n"}
    started = time.perf_counter()
    for i in range(claims):
        conn.execute(_CLAIM, {**params, "battle": battles[i % len(battles)]}, prepare=True).fetchone()
    return (time.perf_counter() - started) / claims * 1000


def measure(quick: bool) -> dict[str, Any]:
    rounds, claims = (5, 200) if quick else (9, 1_000)
    found: dict[str, dict[int, list[float]]] = {"stored": {}, "counted_at_vote": {}}
    with tempfile.TemporaryDirectory(prefix="libra-bench-", dir="/tmp") as home, \
            embedded_postgres(Path(home) / "pg") as url:
        upgrade(url)
        add_models(url)
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            made = {(words, counted): _battles(conn, words, counted) for words in LENGTHS for counted in (True, False)}
            conn.execute("VACUUM ANALYZE")
            for words in LENGTHS:
                for r in range(rounds + 1):  # the first round warms the caches and is dropped
                    order = (True, False) if r % 2 == 0 else (False, True)
                    for counted in order:
                        ms = _round_ms(conn, made[(words, counted)], claims)
                        if r:
                            found["stored" if counted else "counted_at_vote"].setdefault(words, []).append(ms)
    return report(found, rounds, claims)


def report(found: dict[str, dict[int, list[float]]], rounds: int, claims: int) -> dict[str, Any]:
    def medians(name: str) -> dict[str, float]:
        return {f"{words}_words": round(statistics.median(times), 4) for words, times in sorted(found[name].items())}

    stored, counted = medians("stored"), medians("counted_at_vote")
    key = f"{TARGET_WORDS}_words"
    ratio = round(stored[key] / counted[key], 3)
    return {
        "figures": {"claim_ms": stored, "rounds": rounds, "claims_per_round": claims,
                    "note": "wall ms per claim on one connection, one after another, the answers' lengths stored "
                            "with them; medians of alternating rounds; embedded Postgres on this machine"},
        "baseline": {"claim_ms": counted, "note": "the same statement on answers stored without their lengths: the "
                                                  "claim splits their texts into words, as every claim did before"},
        "targets": {"claim_stored_over_counted_at_vote": {"value": ratio, "goal": "<= 0.75 (the project's own)",
                                                          "met": ratio <= 0.75}},
    }


if __name__ == "__main__":
    print(json.dumps(measure("--quick" in sys.argv[1:])))
