"""`libra export votes` and `libra replay` (issue 11, item 10) on a real database: the export carries no
personal data, and a snapshot is recomputed from it exactly."""

import asyncio
import importlib.util
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from arena import export, pairing
from arena import repository as arena_repo
from arena.models import Battle, BattleAnswer, BattleStatus, BattleTurn, Vote, VoteFlag, VoteReview
from core.db import transaction
from core.errors import LibraError
from core.settings import Settings
from server.leaderboard.jobs import take_snapshot
from server.leaderboard.models import LeaderboardSnapshot
from tests.arena.test_style_cells import VERDICTS, _count, _fill

# Export and replay as `libra` runs them (`libra replay` is registered in server/cli/__init__.py).
CLI = ("import typer; from server.cli import release; app = typer.Typer(); "
       "app.add_typer(release.export_app, name='export'); app.command()(release.replay); "
       "app.command('replay-draws')(release.replay_draws); app()")
PERSONAL = ("hash", "idempotency", "address", "identity_match", "session", "error")
HAS_PYARROW = importlib.util.find_spec("pyarrow") is not None


@pytest.fixture
def settings() -> Settings:  # overrides tests/conftest.py: instant votes are not held as too fast to read
    return Settings(_env_file=None, database_url=None, leaderboard_bootstrap_rounds=50,
                    arena_read_words_per_s=1e9, arena_one_sided_votes=10**6, arena_burst_votes=10**6,
                    rate_votes=0, rate_battles=0)


@pytest.fixture
async def models(runtime) -> list:
    from core.registry import repository as registry
    from server.seed import seed_defaults

    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return list(await registry.list_all(session))


def cli(db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "LIBRA_DATABASE_URL": db_url, "HOME": str(Path.home()),
           **{k: v for k, v in os.environ.items() if k == "PYTHONPATH"}}
    return subprocess.run([sys.executable, "-c", CLI, *args], check=False, capture_output=True, text=True,
                          env=env,
                          timeout=120, cwd=Path(__file__).parents[2])


async def _personal_votes(runtime, models: list, n: int, rng: np.random.Generator) -> None:
    """Counted votes carrying everything personal the vote path stores (hashes, keys, private reasons),
    and flags; written directly, as the vote path writes them, so the export has all of it to strip."""
    async with transaction(runtime.sessions) as session:
        await _write_votes(session, models, range(n), rng)


async def _write_votes(session, models: list, numbers: range, rng: np.random.Generator) -> None:
    """`_personal_votes` in a transaction of the caller's; vote k is on models k % 2 and 2 + k % 2."""
    for k in numbers:
        battle = Battle(id=uuid.uuid4(), prompt=f"question {k}", status=BattleStatus.voted,
                        model_a_id=models[k % 2].id, model_b_id=models[2 + k % 2].id, sampling_seed=k,
                        creator_hash="c" * 64, address_hash="d" * 64, pairing={"policy": "uniform"})
        session.add(battle)
        await session.flush()
        session.add(BattleTurn(battle_id=battle.id, turn=1, prompt=battle.prompt))
        session.add_all([BattleAnswer(battle_id=battle.id, turn=1, side=side, status="ok", text=f"answer {side}",
                                      error="host x", identity_match="I am", style_length=int(rng.integers(30)))
                         for side in "ab"])
        vote = Vote(battle_id=battle.id, helpfulness=VERDICTS[int(rng.integers(4))], safety=VERDICTS[k % 4],
                    reason=f"reason {k}", reason_public=k % 2 == 0, idempotency_key=f"key-{battle.id}",
                    session_hash="e" * 64, address_hash="f" * 64, network_hash="g" * 64, read_s=3.0)
        session.add(vote)
        await session.flush()
        session.add(VoteFlag(vote_id=vote.id, rule="burst", detail={"votes": 99}))
        await arena_repo.bump_pair_count(session, "safety", battle.model_a_id, battle.model_b_id, vote.safety)
        await _count(session, battle, vote)


def _values(value: object) -> list[object]:
    if isinstance(value, dict):
        return [x for v in value.values() for x in _values(v)]
    if isinstance(value, list):
        return [x for v in value for x in _values(v)]
    return [value]


def _keys(value: object) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


async def _snapshot_then_more_votes(runtime, models) -> int:
    await _personal_votes(runtime, models, 12, np.random.default_rng(1))
    await _fill(runtime, models, 60, seed=2)  # multi-turn battles, leaks, held and approved votes
    version = await take_snapshot(runtime.sessions, runtime.settings, "manual")
    assert version is not None
    # After the snapshot: more votes, and a held vote approved; the replay must leave both out.
    await _personal_votes(runtime, models, 5, np.random.default_rng(3))
    async with transaction(runtime.sessions) as session:
        reviewed = select(VoteReview.vote_id)
        held = await session.scalar(select(Vote.id).where(Vote.excluded_reason == "review",
                                                          Vote.id.not_in(reviewed)).limit(1))
        session.add(VoteReview(vote_id=held, decision="approved", reviewer="test"))
    return version


async def test_export_has_no_personal_data_and_replays_the_snapshot(runtime, models, db_url,
                                                                    tmp_path) -> None:
    version = await _snapshot_then_more_votes(runtime, models)
    out = tmp_path / "votes.jsonl"
    exported = cli(db_url, "export", "votes", "--format", "jsonl", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12 + 60 + 5
    assert not [k for k in _keys(records) if any(p in k for p in PERSONAL)]
    values = [v for v in _values(records) if isinstance(v, str)]
    assert not {"c" * 64, "d" * 64, "e" * 64, "f" * 64, "g" * 64, "host x", "I am"} & set(values)
    assert not [v for v in values if v.startswith("key-")]
    assert all(r["flags"] == ["burst"] for r in records if r["turns"][0]["prompt"].startswith("question"))
    api = [r for r in records if r["turns"][0]["prompt"].startswith("question")]
    assert {r["vote"]["reason"] for r in api} - {None} == {f"reason {k}" for k in range(0, 12, 2)} | {
        f"reason {k}" for k in range(0, 5, 2)}
    assert any(len(r["turns"]) > 1 for r in records) and all(r["turns"][0]["answers"] for r in records)
    replayed = cli(db_url, "replay", "--snapshot", str(version), "--export", str(out))
    assert replayed.returncode == 0, replayed.stderr
    assert "reproduced exactly" in replayed.stdout


async def test_a_snapshot_waits_for_votes_still_being_written_so_that_its_replay_is_exact(
        runtime, models, db_url, tmp_path) -> None:
    """A vote batch takes its vote ids when it inserts and commits a little later. A snapshot taken in
    between saw a later vote but not that one, so the replay's cutoff (the highest id seen) let it in and
    the replay reported that the counted votes differ. The snapshot now waits for votes in flight."""
    await _personal_votes(runtime, models, 4, np.random.default_rng(5))
    async with runtime.sessions() as slow, slow.begin():
        await _write_votes(slow, models, range(1), np.random.default_rng(6))  # its id taken, not committed
        async with transaction(runtime.sessions) as later:  # another pair of models: no row lock shared
            await _write_votes(later, models, range(1, 2), np.random.default_rng(7))
        snapshot = asyncio.create_task(take_snapshot(runtime.sessions, runtime.settings, "manual"))
        await asyncio.sleep(0.5)
        assert not snapshot.done()
    version = await snapshot  # the slow vote committed as its transaction block ended
    async with transaction(runtime.sessions) as session:
        stored = (await session.get(LeaderboardSnapshot, version)).config["replay"]
    assert stored["max_vote_id"] == 6
    out = tmp_path / "votes.jsonl"
    assert cli(db_url, "export", "votes", "--out", str(out)).returncode == 0
    replayed = cli(db_url, "replay", "--snapshot", str(version), "--export", str(out))
    assert replayed.returncode == 0, replayed.stderr
    assert "reproduced exactly" in replayed.stdout


async def test_votes_are_held_back_only_until_the_snapshots_reader_has_its_view(runtime, models) -> None:
    from server.leaderboard.jobs import view_reader

    await _personal_votes(runtime, models, 2, np.random.default_rng(10))
    async with view_reader(runtime.sessions) as reader:
        # The reader is still reading: a vote goes through at once, and the reader's view does not change.
        await asyncio.wait_for(_personal_votes(runtime, models, 1, np.random.default_rng(11)), timeout=5)
        assert await reader.scalar(select(func.count(Vote.id))) == 2
    async with transaction(runtime.sessions) as session:
        assert await session.scalar(select(func.count(Vote.id))) == 3


async def test_a_snapshot_that_waits_too_long_for_votes_gives_up_with_a_clear_error(
        runtime, models, monkeypatch) -> None:
    from server.leaderboard import jobs

    monkeypatch.setattr(jobs, "VOTES_LOCK_TIMEOUT_S", 0.3)
    async with runtime.sessions() as slow, slow.begin():
        await _write_votes(slow, models, range(1), np.random.default_rng(8))
        with pytest.raises(LibraError, match=r"waited 0.3 s for votes being written") as caught:
            await take_snapshot(runtime.sessions, runtime.settings, "manual")
        assert caught.value.code == "snapshot_busy"
    await _personal_votes(runtime, models, 1, np.random.default_rng(9))  # votes flow again: nothing held
    assert await take_snapshot(runtime.sessions, runtime.settings, "manual") is not None


async def test_replay_fails_when_the_export_differs(runtime, models, db_url, tmp_path) -> None:
    version = await _snapshot_then_more_votes(runtime, models)
    out = tmp_path / "votes.jsonl"
    assert cli(db_url, "export", "votes", "--out", str(out)).returncode == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    first = next(r for r in records if r["vote"]["excluded_reason"] is None and r["vote"]["helpfulness"] == "a")
    first["vote"]["helpfulness"] = "b"
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(r) + "\n" for r in records))
    replayed = cli(db_url, "replay", "--snapshot", str(version), "--export", str(tampered))
    assert replayed.returncode == 1 and "not reproduced" in replayed.stderr
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("".join(json.dumps(r) + "\n" for r in records if r is not first))
    assert "counted votes" in cli(db_url, "replay", "--snapshot", str(version), "--export", str(dropped)).stderr
    assert cli(db_url, "replay", "--snapshot", "999", "--export", str(out)).returncode == 1


@pytest.mark.skipif(not HAS_PYARROW, reason="pyarrow is an optional dependency")
async def test_parquet_export_replays_too(runtime, models, db_url, tmp_path) -> None:
    version = await _snapshot_then_more_votes(runtime, models)
    await _drawn_votes(runtime, Settings(_env_file=None, database_url=None, arena_pairing="uniform"), 4, seed=4)
    out, scores = tmp_path / "votes.parquet", tmp_path / "scores.jsonl"
    exported = cli(db_url, "export", "votes", "--format", "parquet", "--out", str(out))
    assert exported.returncode == 0, exported.stderr
    replayed = cli(db_url, "replay", "--snapshot", str(version), "--export", str(out))
    assert replayed.returncode == 0, replayed.stderr
    assert cli(db_url, "export", "pair-scores", "--out", str(scores)).returncode == 0  # no versions: uniform draws
    replayed = cli("-", "replay-draws", "--export", str(out), "--scores", str(scores))
    assert replayed.returncode == 0 and "draws of 4 battles reproduced exactly (4 uniform)" in replayed.stdout


@pytest.mark.skipif(HAS_PYARROW, reason="checks the message shown without pyarrow")
def test_parquet_without_pyarrow_is_a_clear_error(tmp_path) -> None:
    result = cli("postgresql://u:p@127.0.0.1:1/x", "export", "votes", "--format", "parquet",
                 "--out", str(tmp_path / "x.parquet"))
    assert result.returncode == 1 and "pip install pyarrow" in result.stderr
    assert not (tmp_path / "x.parquet").exists()


async def test_a_held_out_prompt_is_withheld_but_its_vote_kept(runtime, models) -> None:
    await _personal_votes(runtime, models, 2, np.random.default_rng(4))
    held = frozenset({export.normalised("  QUESTION   1 ")})
    async with transaction(runtime.sessions) as session:
        records = [r async for r in export.records(session, held, page=1)]  # page=1: paging is exercised
    assert [r["withheld"] for r in records] == [None, "held_out"]
    kept = records[1]
    assert kept["turns"][0]["prompt"] is None and kept["turns"][0]["answers"][0]["text"] is None
    assert kept["turns"][0]["answers"][0]["style"]["length"] >= 0 and kept["vote"]["helpfulness"]


def test_no_held_out_policy_means_nothing_to_withhold(settings) -> None:
    assert export.held_out_texts(settings, ("2026-W01",)) == frozenset()


async def _drawn_votes(runtime, settings: Settings, n: int, seed: int) -> None:
    """Voted battles whose models were drawn by the service's own draw (`arena.pairing.draw`), each
    storing its draw record as a battle does."""
    async with transaction(runtime.sessions) as session:
        for k in range(n):
            drawn = await pairing.draw(session, np.random.default_rng([seed, k]), settings)
            battle = Battle(id=uuid.uuid4(), prompt=f"drawn {seed} {k}", status=BattleStatus.voted,
                            model_a_id=drawn.model_a.id, model_b_id=drawn.model_b.id, sampling_seed=k,
                            pairing=json.loads(json.dumps(drawn.record)))
            session.add(battle)
            await session.flush()
            session.add(BattleTurn(battle_id=battle.id, turn=1, prompt=battle.prompt))
            session.add_all([BattleAnswer(battle_id=battle.id, turn=1, side=side, status="ok", text=side)
                             for side in "ab"])
            session.add(Vote(battle_id=battle.id, helpfulness=VERDICTS[k % 4], safety=None))


async def _two_score_versions_of_draws(runtime, models) -> None:
    """Draws under score version 1, more votes, draws under version 2, and uniform draws; plus
    hand-written battles without a replayable draw record."""
    active, uniform = Settings(_env_file=None, database_url=None), Settings(_env_file=None, database_url=None,
                                                                           arena_pairing="uniform")
    await _fill(runtime, models, 30, seed=5)  # hand-written: no draw record to replay
    for step in (1, 2):
        async with transaction(runtime.sessions) as session:
            assert (await pairing.refresh_scores(session))[0] == step
        await _drawn_votes(runtime, active, 12, seed=step)
        await _fill(runtime, models, 20, seed=5 + step)  # new counts: the next refresh writes a new version
    await _drawn_votes(runtime, uniform, 6, seed=3)


async def test_every_exported_draw_replays_from_the_export_alone(runtime, models, db_url, tmp_path) -> None:
    await _two_score_versions_of_draws(runtime, models)
    votes, scores = tmp_path / "votes.jsonl", tmp_path / "scores.jsonl"
    assert cli(db_url, "export", "votes", "--out", str(votes)).returncode == 0
    exported = cli(db_url, "export", "pair-scores", "--out", str(scores))
    assert exported.returncode == 0, exported.stderr
    versions = [json.loads(line) for line in scores.read_text().splitlines()]
    assert [v["scores_version"] for v in versions] == [1, 2] and all(len(v["scores"]) == 6 for v in versions)
    records = [json.loads(line) for line in votes.read_text().splitlines()]
    drawn = [r for r in records if r["turns"][0]["prompt"].startswith("drawn")]
    assert len(drawn) == 30 and all(set(r["draw_models"]) == {m.slug for m in models} for r in drawn)
    # Replayed in a process with no database at all.
    replayed = cli("postgresql://nobody@127.0.0.1:1/none", "replay-draws", "--export", str(votes),
                   "--scores", str(scores))
    assert replayed.returncode == 0, replayed.stderr
    assert "draws of 30 battles reproduced exactly (24 active, 6 uniform)" in replayed.stdout
    assert f"{len(records) - 30} battles have no replayable draw record" in replayed.stdout

    # A battle whose models were swapped after the draw is named.
    swapped = next(r for r in drawn if json.loads(r["pairing"])["scores_version"] == 2)
    swapped["model_a"], swapped["model_b"] = swapped["model_b"], swapped["model_a"]
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("".join(json.dumps(r) + "\n" for r in records))
    result = cli("-", "replay-draws", "--export", str(tampered), "--scores", str(scores))
    assert result.returncode == 1 and f"battle {swapped['battle_id']}: stored A={swapped['model_a']}" in result.stderr
    assert "1 differ" in result.stderr and "Traceback" not in result.stderr
    # Without a version's scores the draws that used it cannot be checked: said, not skipped.
    partial = tmp_path / "partial.jsonl"
    partial.write_text(json.dumps(versions[1]) + "\n")
    result = cli("-", "replay-draws", "--export", str(votes), "--scores", str(partial))
    assert result.returncode == 1 and "12 battles drew with pair-score version 1, which" in result.stderr
    # Files that are not exports are clear errors.
    for bad in ('{"scores_version": 1}', "not json"):
        partial.write_text(bad + "\n")
        result = cli("-", "replay-draws", "--export", str(votes), "--scores", str(partial))
        assert result.returncode == 1 and result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = cli("-", "replay-draws", "--export", str(scores), "--scores", str(scores))
    assert result.returncode == 1 and "export record 1 is not one of `libra export votes`" in result.stderr
