"""Style cells counted by the vote (issue 11, item 11): the snapshot reads cells sized by models and
bins, and their style-controlled fit equals the row-based fit over the same votes."""

import importlib.util
import uuid
from pathlib import Path

import numpy as np
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy import select

import ranking
from arena import repository as arena_repo
from arena import style
from arena.models import Battle, BattleAnswer, BattleStatus, BattleTurn, StyleCell, Verdict, Vote, VoteReview
from core.db import libpq_url, transaction
from core.registry import repository as registry
from core.settings import Settings
from server.leaderboard import repository, service
from server.seed import seed_defaults
from tests.arena.arena_wait_for_style_tests import ready_battle

VERDICTS = (Verdict.a, Verdict.b, Verdict.tie, Verdict.both_bad)


@pytest.fixture
def settings() -> Settings:  # overrides tests/conftest.py: instant votes must not be held as too fast to read
    return Settings(_env_file=None, database_url=None, max_prompt_chars=8000, arena_read_words_per_s=1e9)


@pytest.fixture
async def models(runtime) -> list:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return list(await registry.list_all(session))


def _answer(battle_id: uuid.UUID, turn: int, side: str, rng: np.random.Generator) -> BattleAnswer:
    # Small integer counts, so many votes land exactly on a bin edge (e.g. 11 vs 9 words: z = 0.1).
    length, headers, lists, bold = (int(v) for v in rng.integers(0, [30, 3, 4, 3]))
    return BattleAnswer(battle_id=battle_id, turn=turn, side=side, status="ok", text="x", style_length=length,
                        style_headers=headers, style_lists=lists, style_bold=bold)


async def _battle(session, models: list, rng: np.random.Generator, excluded: str | None) -> Vote:
    a, b = (int(i) for i in rng.choice(len(models), 2, replace=False))
    battle = Battle(id=uuid.uuid4(), prompt="p", status=BattleStatus.voted, model_a_id=models[a].id,
                    model_b_id=models[b].id, sampling_seed=0, turns=int(rng.integers(1, 4)),
                    identity_leak=excluded == "identity_leak")
    session.add(battle)
    await session.flush()
    for turn in range(1, battle.turns + 1):
        session.add(BattleTurn(battle_id=battle.id, turn=turn, prompt=f"turn {turn}"))
        session.add_all([_answer(battle.id, turn, side, rng) for side in "ab"])
    vote = Vote(battle_id=battle.id, helpfulness=VERDICTS[int(rng.integers(4))], excluded_reason=excluded)
    session.add(vote)
    await session.flush()
    if excluded is None:  # as the vote path does, in the vote's transaction
        await _count(session, battle, vote)
    return vote


async def _count(session, battle: Battle, vote: Vote) -> None:
    await arena_repo.bump_pair_count(session, "helpfulness", battle.model_a_id, battle.model_b_id, vote.helpfulness)
    await style.bump_style_cell(session, battle, vote.helpfulness)


async def _fill(runtime, models: list, votes: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    async with transaction(runtime.sessions) as session:
        for k in range(votes):
            excluded = (None, None, None, "identity_leak", "review")[k % 5]
            vote = await _battle(session, models, rng, excluded)
            if excluded == "review" and k % 10 == 4:  # approved later: the review path counts it then
                session.add(VoteReview(vote_id=vote.id, decision="approved", reviewer="test"))
                await _count(session, await session.get(Battle, vote.battle_id), vote)


async def _both(runtime, models: list) -> tuple[ranking.StyleCounts, ranking.StyleCounts, int]:
    async with transaction(runtime.sessions) as session:
        cells = await repository.style_cells(session)
        rows = await repository.helpfulness_votes_with_style(session)
    return service.style_from_cells(models, cells), service.style_from_votes(models, rows), len(rows)


async def test_cells_fit_equals_the_row_based_fit_on_the_same_votes(runtime, models) -> None:
    await _fill(runtime, models, 400, seed=11)
    from_cells, from_rows, counted = await _both(runtime, models)
    # 3 of 5 votes count outright, 1 of 10 after an approved review; leaks and held votes never.
    assert counted == 400 * 3 // 5 + 400 // 10
    assert from_cells.outcomes.sum() == counted
    np.testing.assert_array_equal(from_cells.a, from_rows.a)
    np.testing.assert_array_equal(from_cells.b, from_rows.b)
    np.testing.assert_array_equal(from_cells.outcomes, from_rows.outcomes)
    np.testing.assert_allclose(from_cells.z, from_rows.z, rtol=0, atol=1e-12)
    fit_cells, fit_rows = ranking.fit_style_controlled(from_cells), ranking.fit_style_controlled(from_rows)
    rated = fit_rows.rated
    assert rated.sum() >= 2 and np.array_equal(fit_cells.rated, rated)
    assert np.max(np.abs(fit_cells.ratings[rated] - fit_rows.ratings[rated])) < 1e-9
    assert np.max(np.abs(fit_cells.coefficients - fit_rows.coefficients)) < 1e-9


async def test_a_multi_turn_vote_sums_each_side_over_its_turns(runtime, models) -> None:
    rng = np.random.default_rng(3)
    async with transaction(runtime.sessions) as session:
        vote = await _battle(session, models, rng, None)
        battle = await session.get(Battle, vote.battle_id)
        answers = (await session.scalars(select(BattleAnswer).where(BattleAnswer.battle_id == battle.id))).all()
        cell = (await session.scalars(select(StyleCell))).one()
    totals = {side: np.sum([[x.style_length, x.style_headers, x.style_lists, x.style_bold]
                            for x in answers if x.side == side], axis=0) for side in "ab"}
    lo_side, hi_side = ("a", "b") if battle.model_a_id < battle.model_b_id else ("b", "a")
    joint_bin, z = ranking.style.vote_cell(totals[lo_side], totals[hi_side])
    assert (cell.model_lo_id, cell.model_hi_id) == tuple(sorted((battle.model_a_id, battle.model_b_id)))
    assert cell.bin == joint_bin
    np.testing.assert_allclose([cell.z_length, cell.z_headers, cell.z_lists, cell.z_bold], z)
    assert cell.lo_wins + cell.hi_wins + cell.ties + cell.both_bad == 1
    # Totals the caller already read (the vote path's claim can carry them) land in the same cell.
    async with transaction(runtime.sessions) as session:
        await style.bump_style_cell(session, battle, vote.helpfulness, totals={s: tuple(totals[s]) for s in "ab"})
        twice = (await session.scalars(select(StyleCell))).one()
    assert twice.bin == joint_bin and twice.lo_wins + twice.hi_wins + twice.ties + twice.both_bad == 2
    np.testing.assert_allclose([twice.z_length, twice.z_headers, twice.z_lists, twice.z_bold], 2 * np.array(z))


async def test_a_vote_through_the_api_counts_in_one_cell(client, runtime, models) -> None:
    for verdict in ("a", "tie", "both_bad"):
        battle = await ready_battle(client, "hi")
        voted = await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": verdict})
        assert voted.status_code == 200, voted.text
    async with transaction(runtime.sessions) as session:
        cells = (await session.scalars(select(StyleCell))).all()
        excluded = (await session.scalars(select(Vote.excluded_reason))).all()
    assert excluded == [None, None, None]
    assert sum(c.lo_wins + c.hi_wins for c in cells) == 1
    assert sum(c.ties for c in cells) == 1 and sum(c.both_bad for c in cells) == 1


def _migration():
    path = Path(__file__).parents[2] / "migrations" / "versions" / "0011_style_cells_backfill.py"
    spec = importlib.util.spec_from_file_location("backfill_0011", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell_table(db_url: str) -> dict:
    with psycopg.connect(libpq_url(db_url)) as conn:
        rows = conn.execute("SELECT model_lo_id, model_hi_id, bin, lo_wins, hi_wins, ties, both_bad, z_length, "
                            "z_headers, z_lists, z_bold FROM style_cells").fetchall()
    return {r[:3]: r[3:] for r in rows}


async def test_the_backfill_rebuilds_the_cells_the_vote_path_wrote(runtime, models, db_url) -> None:
    await _fill(runtime, models, 150, seed=5)
    live = _cell_table(db_url)
    engine = sa.create_engine(db_url.replace("+psycopg_async", "+psycopg"))
    try:
        with engine.begin() as bind:
            written = _migration().backfill(bind, chunk=17)  # small chunks: the merge across chunks is exercised
    finally:
        engine.dispose()
    rebuilt = _cell_table(db_url)
    assert written == len(live) and rebuilt.keys() == live.keys()
    for key, values in live.items():
        assert rebuilt[key][:4] == values[:4]
        np.testing.assert_allclose(rebuilt[key][4:], values[4:], rtol=0, atol=1e-12)
