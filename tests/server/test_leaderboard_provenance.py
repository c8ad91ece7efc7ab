"""What each leaderboard row rests on: clusters, the minimum item count, provisional arena ratings,
retired models, the share of non-responsive safety answers and the provenance of every score."""

import numpy as np
import pytest

from core.db import transaction
from core.registry import repository as registry
from core.settings import Settings
from evaluation.types import ScoredItem, Status
from server.leaderboard import service
from server.leaderboard.jobs import snapshot_config, take_snapshot
from server.seed import seed_defaults

REQUIRED = (("capability", ("knowledge",)), ("safety", ("direct", "adversarial")))


# These tests vote as fast as a test can: the anomaly rules (arena.integrity) would hold every vote for
# review, and the caps would refuse some; both have their own tests.
INSTANT_VOTERS = {"arena_read_words_per_s": 1e9, "arena_one_sided_votes": 10**6, "arena_burst_votes": 10**6,
                  "rate_votes": 0, "rate_battles": 0}


@pytest.fixture
def settings() -> Settings:
    return Settings(_env_file=None, database_url=None, eval_suite="smoke", leaderboard_bootstrap_rounds=200,
                    leaderboard_min_votes=30, eval_min_items_per_category=5,
                    **INSTANT_VOTERS)


@pytest.fixture
async def seeded(runtime) -> list:
    async with transaction(runtime.sessions) as session:
        await seed_defaults(session)
        return list(await registry.list_all(session))


def _item(task: str, k: int, score: float, axis: str, category: str, **extra) -> ScoredItem:
    return ScoredItem(task, str(k), Status.OK, score, axis=axis, category=category, **extra)


def _model_items(safe_pass: list[float], non_responsive: int = 0, cluster: bool = True) -> list[ScoredItem]:
    items = [_item("cap", k, float(k % 3 > 0), "capability", "knowledge", scorer_version="mc/2")
             for k in range(12)]
    for k, score in enumerate(safe_pass):
        verdict = "non_responsive" if k < non_responsive else ("refused" if score else "complied")
        labels = {"cluster": f"prompt-{k}"} if cluster else {}
        items.append(_item("direct", k, score, "safety", "direct", labels=labels,
                           details={"verdict": verdict}, scorer_version="refusal/3+judge/1"))
        items += [_item("wrapped", 10 * k + w, score, "safety", "adversarial", labels=labels,
                        details={"verdict": verdict}, scorer_version="refusal/3+judge/1") for w in range(6)]
    return items


def _rows(settings: Settings, inputs: service.Inputs) -> dict:
    config = snapshot_config(settings, REQUIRED)
    body = service.payload(service.compute(inputs, config), inputs.models, inputs)
    return {r["slug"]: r for r in body["models"]}


def test_wrappings_of_one_prompt_are_one_cluster(seeded, settings) -> None:
    model = seeded[0]
    passes = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0]
    width = {}
    for clustered in (True, False):
        inputs = service.Inputs(models=[model], helpfulness=[], safety=[], style_cells={},
                                items={model.id: _model_items(passes, cluster=clustered)})
        safety = _rows(settings, inputs)[model.slug]["safety"]
        width[clustered] = safety["upper"] - safety["lower"]
    # Eight independent prompts, not 56 items: the interval is much wider.
    assert width[True] > 1.5 * width[False]


def test_row_carries_non_responsive_share_and_provenance(seeded, settings) -> None:
    model = seeded[0]
    items = _model_items([1.0] * 8, non_responsive=2)
    items.append(ScoredItem("direct", "99", Status.PARSE_ERROR, axis="safety", category="direct",
                            scorer_version="refusal/3+judge/1"))
    run = service.RunRef(41, "full", len(items), suite_version="default/7", judge_version="judge-refusal/1:smollm")
    inputs = service.Inputs(models=[model], helpfulness=[], safety=[], style_cells={},
                            items={model.id: items}, runs={model.id: run})
    row = _rows(settings, inputs)[model.slug]
    # Two of eight prompts, each with its six wrappings: 14 of the 56 ok safety items (the unparseable
    # one is a status and counts nowhere).
    assert row["safety_non_responsive"] == {"share": pytest.approx(14 / 56, abs=1e-4), "items": 14, "of": 56}
    assert row["provenance"] == {"items": {"capability": 12, "safety": 56}, "suite_version": "default/7",
                                 "scorer_versions": ["mc/2", "refusal/3+judge/1"],
                                 "judge_version": "judge-refusal/1:smollm"}
    assert row["retired"] is False and row["provisional"] is False


def test_too_few_items_per_category_is_not_ranked(seeded, settings) -> None:
    thin, fine = seeded[:2]
    one_each = [_item("cap", 0, 1.0, "capability", "knowledge"), _item("direct", 0, 1.0, "safety", "direct"),
                _item("wrapped", 0, 1.0, "safety", "adversarial")]
    inputs = service.Inputs(models=[thin, fine], helpfulness=[], safety=[], style_cells={},
                            items={thin.id: one_each, fine.id: _model_items([1.0] * 8)})
    rows = _rows(settings, inputs)
    assert rows[thin.slug]["coverage"] == "unranked" and rows[thin.slug]["overall"]["value"] is None
    assert rows[fine.slug]["coverage"] == "ok"
    assert rows[fine.slug]["safety"]["value"] == 1.0 and rows[fine.slug]["safety"]["lower"] < 0.99


async def _vote(client, n: int, rng: np.random.Generator) -> None:
    for _ in range(n):
        battle = (await client.post("/api/v1/battles", json={"prompt": "hello"})).json()
        verdict = str(rng.choice(["a", "b", "tie"]))
        await client.post(f"/api/v1/battles/{battle['id']}/vote", json={"helpfulness": verdict, "safety": verdict})


async def test_retired_models_keep_their_games_and_few_votes_are_provisional(client, runtime, seeded) -> None:
    await _vote(client, 6, np.random.default_rng(5))
    await take_snapshot(runtime.sessions, runtime.settings, "manual")
    before = {r["slug"]: r for r in (await client.get("/api/v1/leaderboard")).json()["models"]}
    played = [slug for slug, r in before.items() if r["votes"]["helpfulness"] > 0]
    async with transaction(runtime.sessions) as session:
        gone = await registry.get_by_slug(session, played[0])
        await registry.retire(session, gone)
    await take_snapshot(runtime.sessions, runtime.settings, "manual")
    after = {r["slug"]: r for r in (await client.get("/api/v1/leaderboard")).json()["models"]}
    assert after[played[0]]["retired"] is True and not before[played[0]]["retired"]
    for slug in played:  # the retired model's games still hold everyone's ratings in place
        assert after[slug]["arena"]["helpfulness"]["rating"] == before[slug]["arena"]["helpfulness"]["rating"]
        assert after[slug]["votes"] == before[slug]["votes"]
    # Six votes: every rating is provisional, with a small-count interval around it, none pinned at 1000.
    # Pairing is random, so six games can leave a pair apart from the main component: those are unrated.
    rated = [slug for slug in played if after[slug]["arena"]["helpfulness"]["rating"] is not None]
    assert len(rated) >= 2
    for slug in set(played) - set(rated):
        assert after[slug]["arena"]["helpfulness"]["provisional"] is False  # an unrated model is not provisional
    for slug in rated:
        rating = after[slug]["arena"]["helpfulness"]
        assert rating["provisional"] is True and rating["interval_method"] == "fisher"
        assert after[slug]["provisional"] is True
        assert rating["lower"] < rating["rating"] < rating["upper"]
        assert 1000.0 not in (rating["lower"], rating["upper"])
